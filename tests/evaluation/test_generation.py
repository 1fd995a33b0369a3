"""GenerationMetric (PNG / ADM .npz export, FID / IS / precision-recall through torch-fidelity)
and frechet_distance."""
import io
import logging
import math
import os
import warnings
import zipfile
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from PIL import Image

from visionllama_mm.evaluation import generation
from visionllama_mm.evaluation.generation import GenerationMetric, frechet_distance

H, W = 16, 12  # not square: a transposed H/W would show


def _images(n, seed):
    return torch.randint(0, 256, (n, 3, H, W), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def _samples(images, labels, order):
    return [dict(pred_img=images[i], gt_label=torch.tensor([labels[i]]), sample_idx=i)
            for i in order]


@pytest.fixture
def logs(monkeypatch):
    """What GenerationMetric logs: (level, message)."""
    records = []
    monkeypatch.setattr(generation, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: records.append((level, msg)))
    return records


def _warnings(logs, level=logging.WARNING):
    return [m for lv, m in logs if lv == level]


def test_pngs_npz_and_missing_weights_warning(tmp_path, logs):
    images, labels = _images(6, 0), [3, 1, 4, 1, 5, 9]
    # two "ranks" (strided shares, as DefaultSampler gives them), merged out of order
    rank0, rank1 = GenerationMetric(str(tmp_path)), GenerationMetric(str(tmp_path))
    rank0.process(None, _samples(images, labels, [0, 2, 4]))
    rank1.process(None, _samples(images, labels, [1, 3, 5]))
    assert rank1.results[0] == dict(sample_idx=1, label=1, path=str(tmp_path / 'images/000001.png'))
    metric = GenerationMetric(str(tmp_path), reference=str(tmp_path / 'nowhere'))
    out = metric.compute_metrics(rank1.results + rank0.results)
    # nothing could be scored without weights, and that is said once per extractor, not raised
    assert out == dict(num_samples=6)
    for i in range(6):
        png = np.asarray(Image.open(tmp_path / f'images/{i:06d}.png'))
        assert (png == images[i].permute(1, 2, 0).numpy()).all()
    with np.load(tmp_path / 'samples_6x16x12x3.npz', allow_pickle=False) as f:
        assert sorted(f.files) == ['arr_0', 'arr_1']
        assert f['arr_0'].dtype == np.uint8 and f['arr_0'].shape == (6, H, W, 3)
        assert (f['arr_0'] == images.permute(0, 2, 3, 1).numpy()).all()
        assert f['arr_1'].dtype == np.int64 and f['arr_1'].tolist() == labels
    # the streamed members hold exactly what np.save writes (what ADM's streaming reader parses)
    with zipfile.ZipFile(tmp_path / 'samples_6x16x12x3.npz') as zf:
        for name, array in (('arr_0', images.permute(0, 2, 3, 1).numpy()),
                            ('arr_1', np.array(labels, np.int64))):
            expected = io.BytesIO()
            np.save(expected, np.ascontiguousarray(array))
            assert zf.read(f'{name}.npy') == expected.getvalue()
    (warning, ) = _warnings(logs)
    for text in ('Inception Score and FID and precision/recall not computed',
                 'weights-inception-2015-12-05-6726825d.pth is not set',
                 'https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/'
                 'weights-inception-2015-12-05-6726825d.pth',
                 'GenerationMetric(inception_weights=<path to'):
        assert text in warning


def test_vgg16_prc_missing_file_warning(tmp_path, logs):
    os.makedirs(tmp_path / 'ref')
    metric = GenerationMetric(str(tmp_path / 'out'), metrics=['prc'], prc_features='vgg16',
                              vgg16_weights=str(tmp_path / 'vgg.pth'), save_npz=False,
                              save_png=False, reference=str(tmp_path / 'ref'))
    metric.process(None, _samples(_images(3, 1), [0, 1, 2], range(3)))
    assert metric.compute_metrics(metric.results) == dict(num_samples=3)
    (warning, ) = _warnings(logs)
    assert ('precision/recall not computed: the weights file vgg16-397923af.pth is missing '
            f'({tmp_path / "vgg.pth"} is not a file)') in warning
    assert 'https://download.pytorch.org/models/vgg16-397923af.pth' in warning
    assert 'GenerationMetric(vgg16_weights=<path to vgg16-397923af.pth>)' in warning
    # save_png=False: the PNGs (the ranks' hand-over) are gone afterwards, no .npz was asked for
    assert os.listdir(tmp_path / 'out') == []


def test_no_reference_and_broken_weights_are_reported(tmp_path, logs):
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(b'not a checkpoint')
    metric = GenerationMetric(str(tmp_path / 'out'), inception_weights=str(broken),
                              save_npz=False)
    metric.process(None, _samples(_images(4, 2), [0, 0, 1, 1], range(4)))
    assert metric.compute_metrics(metric.results) == dict(num_samples=4)
    (warning, ) = _warnings(logs)
    assert 'FID and precision/recall not computed: no reference images' in warning
    assert 'GenerationMetric(reference=' in warning
    (error, ) = _warnings(logs, logging.ERROR)
    assert "torch-fidelity failed on ['isc'] with inception-v3-compat" in error


def test_errors(tmp_path):
    metric = GenerationMetric(str(tmp_path))
    images = _images(4, 3)
    metric.process(None, _samples(images, [0] * 4, [0, 1, 2, 3, 1, 2]))
    with pytest.raises(ValueError, match=r'sample_idx \[1, 2\] \(2 in all\) came more than once'):
        metric.compute_metrics(metric.results)
    with pytest.raises(ValueError, match=r'pred_img of sample 7 must be a uint8 \(3, H, W\) '
                                         r'tensor, got torch.float32 \(3, 4, 4\)'):
        metric.process(None, [dict(pred_img=torch.zeros(3, 4, 4), sample_idx=7)])
    with pytest.raises(KeyError, match="has no 'sample_idx'"):
        metric.process(None, [dict(pred_img=images[0])])
    with pytest.raises(ValueError, match=r"unknown metrics \['kid'\]"):
        GenerationMetric(str(tmp_path), metrics=('fid', 'kid'))
    with pytest.raises(ValueError, match="prc_features must be one of"):
        GenerationMetric(str(tmp_path), prc_features='clip')


def test_through_mmengine_evaluator(tmp_path, logs):
    """DataSamples -> dicts, results collected, keys prefixed ``gen/``; unconditional samples (no
    gt_label) give an .npz with arr_0 only."""
    evaluator = Evaluator(METRICS.build(dict(type='GenerationMetric', out_dir=str(tmp_path),
                                             metrics=['isc'])))
    images = _images(3, 4)
    batch = []
    for i in range(3):
        ds = DataSample()
        ds.set_metainfo(dict(sample_idx=i))
        ds.pred_img = images[i]
        batch.append(ds)
    evaluator.process(batch)
    assert evaluator.evaluate(3) == {'gen/num_samples': 3}
    with np.load(tmp_path / 'samples_3x16x12x3.npz') as f:
        assert f.files == ['arr_0'] and (f['arr_0'] == images.permute(0, 2, 3, 1).numpy()).all()


def _exact_gaussian_features(n, mean, var, seed):
    """(n, D) features whose sample mean and (ddof=1) covariance are exactly mean and diag(var)."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T
    return z * np.sqrt(var) + mean


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    var_a, var_b = rng.uniform(0.2, 3, d), rng.uniform(0.2, 3, d)
    a = _exact_gaussian_features(200, mu_a, var_a, 1)
    b = _exact_gaussian_features(300, mu_b, var_b, 2)
    expected = ((mu_a - mu_b)**2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b))**2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(torch.from_numpy(a).float(), b) == pytest.approx(expected, rel=1e-5)
    assert abs(frechet_distance(a, a)) < 1e-9
    with pytest.raises(ValueError, match=r'feats_b must be \(N, D\) features with N >= 2, got '
                                         r'shape \(1, 16\)'):
        frechet_distance(a, b[:1])
    with pytest.raises(ValueError, match=r'feature sizes differ \(16 vs 8\)'):
        frechet_distance(a, b[:, :8])


@pytest.fixture(scope='module')
def inception_weights(tmp_path_factory):
    """A valid torch-fidelity Inception-v3 weights FILE with random values: the extractor built
    without loading anything, its convolutions re-drawn at He scale (so the features do not vanish
    through the depth), and its state dict saved."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe
    cls = fe.FeatureExtractorInceptionV3
    with mock.patch.object(fe, 'load_state_dict_from_url', lambda *a, **k: None), \
            mock.patch.object(cls, 'load_state_dict', lambda self, state: None):
        model = cls('inception-v3-compat', ['2048'])
    g = torch.Generator().manual_seed(0)
    state = model.state_dict()
    for value in state.values():
        if value.dim() == 4:
            value.normal_(0, math.sqrt(2 / value[0].numel()), generator=g)
    path = str(tmp_path_factory.mktemp('weights') / 'weights-inception-2015-12-05-6726825d.pth')
    torch.save(state, path)
    return path


def _mixed_6_conv(weights, images):
    """sFID's features as ADM's evaluator describes them, computed here step by step: the uint8
    images resized to 299 x 299 by TensorFlow's bilinear resize and scaled to [-1, 1], Inception-v3
    up to ``mixed_6/conv`` (the ReLU output of the 1x1 branch of the 7th mixed block, 192 x 17 x 17;
    torch-fidelity's ``Mixed_6d.branch1x1``), its first 7 channels in NHWC order, one 2023-d
    float64 vector per image."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torch_fidelity.interpolate_compat_tensorflow import \
        interpolate_bilinear_2d_like_tensorflow1x
    net = FeatureExtractorInceptionV3('inception-v3-compat', ['768'],
                                      feature_extractor_weights_path=weights)
    with torch.no_grad():
        x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299),
                                                      align_corners=False)
        x = (x - 128) / 128
        for name in ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'MaxPool_1',
                     'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'MaxPool_2', 'Mixed_5b', 'Mixed_5c',
                     'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c'):
            x = getattr(net, name)(x)
        x = net.Mixed_6d.branch1x1(x)
    assert x.shape[1:] == (192, 17, 17)
    return x[:, :7].permute(0, 2, 3, 1).reshape(len(x), 7 * 17 * 17).double().numpy()


def _adm_frechet(a, b):
    """The Fréchet distance of ADM's evaluator, in float64: np.mean / np.cov statistics and scipy's
    sqrtm of the covariance product (retried with 1e-6 on the diagonals if not finite), real
    part."""
    import scipy.linalg
    mu_a, mu_b = a.mean(0), b.mean(0)
    sig_a, sig_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # N < D: the covariances are singular, as scipy says
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(sig_a @ sig_b)
    if not np.isfinite(root).all():
        eps = np.eye(len(sig_a)) * 1e-6
        root = scipy.linalg.sqrtm((sig_a + eps) @ (sig_b + eps))
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(sig_a) + np.trace(sig_b) -
                 2 * np.trace(root.real))


def test_metrics_with_weights(tmp_path, inception_weights, logs, monkeypatch):
    """6 noise images scored against themselves (an ADM .npz reference) and against 6 flat
    colour images (a folder in ImageNet layout), on random-weight Inception features.

    sFID is checked against a float64 implementation of ADM's definition (the samples' features
    computed step by step, scipy's sqrtm on the 2023-d covariances). torch-fidelity's feature pass is
    spied on (passed on unchanged) to check that one Inception pass per image set gives all
    features."""
    passes, featuresdict = [], generation.get_featuresdict_from_dataset

    def spy(data, extractor, *args, **kwargs):
        images = []
        hook = extractor.inception.register_forward_pre_hook(
            lambda module, inputs: images.append(len(inputs[0])))
        out = featuresdict(data, extractor, *args, **kwargs)
        hook.remove()
        passes.append(dict(features=list(extractor.features_list), images=sum(images), out=out))
        return out

    monkeypatch.setattr(generation, 'get_featuresdict_from_dataset', spy)
    n = 6
    noise = _images(n, 5)
    flat = (torch.rand(n, 3, 1, 1, generator=torch.Generator().manual_seed(6)) * 255).to(
        torch.uint8).expand(n, 3, H, W)
    np.savez(tmp_path / 'ref.npz', noise.permute(0, 2, 3, 1).numpy())
    os.makedirs(tmp_path / 'flat/n0001')
    for i in range(n):
        Image.fromarray(flat[i].permute(1, 2, 0).numpy()).save(tmp_path / f'flat/n0001/{i}.png')

    results = {}
    for name, reference in (('self', tmp_path / 'ref.npz'), ('flat', tmp_path / 'flat')):
        metric = GenerationMetric(str(tmp_path / 'out' / name), reference=str(reference),
                                  inception_weights=inception_weights, save_npz=False)
        metric.process(None, _samples(noise, [0] * n, range(n)))
        results[name] = metric.compute_metrics(metric.results)
    # no error; one warning per run: FID from 6 images is not comparable with published FIDs
    assert [lv for lv, _ in logs] == [logging.WARNING] * 2
    assert all('FID from 6 samples and 6 reference images: with fewer than 2048' in m
               for _, m in logs), logs
    # per run one Inception pass over the samples and one over the reference: each image once,
    # giving the logits (IS), the pool features (FID, precision / recall) and sFID's features
    assert [(p['features'], p['images']) for p in passes] == [
        (['logits_unbiased', '2048', 'mixed_6/conv'], n)] * 4
    same, diff = results['self'], results['flat']
    assert set(same) == {'num_samples', 'fid', 'sfid', 'is_mean', 'is_std', 'precision', 'recall'}
    assert same['num_samples'] == 6
    assert abs(same['fid']) < 1e-4 * diff['fid'] and diff['fid'] > 0
    assert same['precision'] == same['recall'] == 1.0
    # 6 samples -> 6 splits of one sample each: every split's IS is exactly 1
    assert same['is_mean'] == pytest.approx(1.0, abs=1e-9) and same['is_std'] < 1e-9

    # sFID: identical sets -> 0; noise vs flat colours -> ADM's definition in float64, on the
    # samples' features computed step by step (the flat images' ones: the same pass, spied on)
    samples = _mixed_6_conv(inception_weights, noise)
    spatial, ref = (passes[i]['out']['mixed_6/conv'].double().numpy() for i in (2, 3))
    assert spatial.shape == ref.shape == (n, 2023)
    assert np.abs(spatial - samples).max() <= 1e-5 * np.abs(samples).max()
    expected = _adm_frechet(samples, ref)
    assert abs(same['sfid']) < 1e-9 * diff['sfid']
    assert diff['sfid'] == pytest.approx(expected, rel=1e-6)
    assert diff['fid'] == frechet_distance(passes[2]['out']['2048'], passes[3]['out']['2048'])
    print(f'sFID noise vs flat: {diff["sfid"]!r}, float64 reference {expected!r}, relative '
          f'difference {abs(diff["sfid"] - expected) / expected:.2e}; identical sets '
          f'{same["sfid"]!r}; FID {diff["fid"]!r}')


def _folder(root, sizes):
    """Black PNGs of the given (H, W) sizes in ``root/n0/`` (ImageNet layout)."""
    os.makedirs(root / 'n0')
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(root / 'n0' / f'{i}.png')
    return str(root)


def _square(n, size, seed=8):
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(seed))
    return [dict(pred_img=images[i], sample_idx=i) for i in range(n)]


def test_reference_of_another_size_is_refused_at_the_first_batch(tmp_path):
    """8x8 samples against 32x32 reference images: refused before any PNG is written."""
    ref = _folder(tmp_path / 'ref32', [(32, 32)] * 3)
    metric = GenerationMetric(str(tmp_path / 'out'), reference=ref)
    with pytest.raises(ValueError) as err:
        metric.process(None, _square(2, 8))
    msg = str(err.value)
    assert msg.startswith(f'GenerationMetric: the samples are 8x8 (HxW) but the reference images '
                          f'in {ref} are 32x32 (e.g. '), msg
    assert ('FID and precision/recall between images of different sizes measure the resizing, '
            'not the model. Set GenerationMetric(resize_to=...) to resize samples and reference '
            'to one size (e.g. resize_to=8), or use a reference of 8x8 images.') in msg
    assert not os.listdir(tmp_path / 'out' / 'images')
    # an ADM .npz reference: only its header is read
    np.savez(tmp_path / 'ref.npz', np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r'the samples are 8x8 \(HxW\) but the reference images '
                                         r'in .*ref\.npz are 16x16 \(e\.g\. .*\(arr_0\)\)'):
        GenerationMetric(str(tmp_path / 'out2'), reference=str(tmp_path / 'ref.npz'),
                         metrics=['prc']).process(None, _square(2, 8))
    # a reference folder of two sizes
    mixed = _folder(tmp_path / 'mixed', [(8, 8), (8, 8), (16, 8)])
    with pytest.raises(ValueError, match=r'the reference images in .*mixed have 2 sizes \(HxW\): '
                                         r'8x8 \(e\.g\. .*0\.png\), 16x8 \(e\.g\. .*2\.png\); '
                                         r'FID and precision/recall need one\. Set '
                                         r'GenerationMetric\(resize_to=\.\.\.\)'):
        GenerationMetric(str(tmp_path / 'out3'), reference=mixed).process(None, _square(2, 8))
    # samples of two sizes
    metric = GenerationMetric(str(tmp_path / 'out4'))
    with pytest.raises(ValueError, match=r'sample 1 is 8x4 \(HxW\), sample 0 was 8x8; the samples '
                                         r'of one evaluation must have one size'):
        metric.process(None, [_square(1, 8)[0],
                              dict(pred_img=torch.zeros(3, 8, 4, dtype=torch.uint8), sample_idx=1)])
    # only the Inception Score asked for: the reference plays no part
    GenerationMetric(str(tmp_path / 'out5'), reference=ref, metrics=['isc']).process(
        None, _square(2, 8))
    with pytest.raises(ValueError, match=r'resize_to must be a positive int or an \(H, W\) pair '
                                         r'of them, got \(8, 0\)'):
        GenerationMetric(str(tmp_path), resize_to=(8, 0))
    # samples written into the reference folder would become reference images
    with pytest.raises(ValueError, match=r'the samples go to .*ref32/out/images, inside the '
                                         r'reference folder .*ref32: they would be counted as '
                                         r'reference images'):
        GenerationMetric(str(tmp_path / 'ref32' / 'out'), reference=ref)


def _fake_features(calls):
    """A stand-in for the Inception pass: records its inputs, returns random features of the
    right sizes."""
    sizes = {'logits_unbiased': 1008, '2048': 2048, 'mixed_6/conv': 2023}

    def extract(inputs, weights, features, batch_size):
        calls.append(dict(inputs=inputs, features=list(features)))
        g = torch.Generator().manual_seed(len(calls))
        out = {name: {f: torch.randn(len(data), sizes[f], generator=g) for f in features}
               for name, data in inputs.items()}
        calls[-1]['out'] = out
        return out

    return extract


def test_resize_to_empty_reference_and_too_few_images(tmp_path, logs, monkeypatch):
    calls = []
    monkeypatch.setattr(generation, '_inception_features', _fake_features(calls))
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'')  # only its existence is checked before the feature pass
    ref = _folder(tmp_path / 'ref32', [(32, 32)] * 3)
    metric = GenerationMetric(str(tmp_path / 'out'), reference=ref, resize_to=8, save_npz=False,
                              inception_weights=str(weights))
    metric.process(None, _square(3, 8))
    out = metric.compute_metrics(metric.results)
    assert set(out) == {'num_samples', 'fid', 'sfid', 'is_mean', 'is_std'}
    assert out['num_samples'] == 3 and out['fid'] > 0 and out['sfid'] > 0
    (call, ) = calls
    assert call['features'] == ['logits_unbiased', '2048', 'mixed_6/conv']
    reference, samples = call['inputs']['reference'], call['inputs']['samples']
    assert len(reference) == 3 and reference[0].shape == (3, 8, 8)  # resized 32 -> 8
    assert samples[0].shape == (3, 8, 8)
    prc, fid = _warnings(logs)
    assert prc == ('GenerationMetric: precision/recall not computed: its k=3 nearest neighbours '
                   'need more than 3 images in each set, got 3 samples and 3 reference images.')
    assert fid.startswith('GenerationMetric: FID from 3 samples and 3 reference images: with '
                          'fewer than 2048 (the Inception feature size) the covariance is singular')
    # an empty reference folder: FID is left out with a warning that says so
    logs.clear()
    os.makedirs(tmp_path / 'empty' / 'n0')
    metric = GenerationMetric(str(tmp_path / 'out2'), reference=str(tmp_path / 'empty'),
                              metrics=['fid'], save_npz=False, inception_weights=str(weights))
    metric.process(None, _square(2, 8))
    assert metric.compute_metrics(metric.results) == dict(num_samples=2)
    assert _warnings(logs) == [
        f'GenerationMetric: FID not computed: the reference folder {tmp_path / "empty"} holds no '
        'images (png, jpg, jpeg files, searched recursively).']
    assert len(calls) == 1


def test_adm_reference_statistics(tmp_path, logs, monkeypatch):
    """An ADM reference batch with ``mu`` / ``sigma`` / ``mu_s`` / ``sigma_s``: FID and sFID are
    scored against those statistics (as ADM's evaluator does), its ``arr_0`` images serve precision
    / recall only. One with FID's statistics but not sFID's, or of other shapes, is refused at the
    first batch."""
    calls = []
    monkeypatch.setattr(generation, '_inception_features', _fake_features(calls))
    weights = tmp_path / 'weights.pth'
    weights.write_bytes(b'')
    rng = np.random.default_rng(0)
    var = dict(sigma=rng.uniform(0.5, 2, 2048), sigma_s=rng.uniform(0.5, 2, 2023))
    stats = dict(mu=rng.normal(size=2048), sigma=np.diag(var['sigma']).astype(np.float32),
                 mu_s=rng.normal(size=2023), sigma_s=np.diag(var['sigma_s']).astype(np.float32))
    images = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / 'adm.npz', arr_0=images, **stats)
    metric = GenerationMetric(str(tmp_path / 'out'), reference=str(tmp_path / 'adm.npz'),
                              metrics=['fid', 'prc'], save_npz=False, inception_weights=str(weights))
    metric.process(None, _square(5, 8))
    out = metric.compute_metrics(metric.results)
    assert set(out) == {'num_samples', 'fid', 'sfid', 'precision', 'recall'}
    (call, ) = calls
    assert len(call['inputs']['reference']) == 4  # arr_0: precision / recall
    for name, layer, mean, sigma in (('fid', '2048', 'mu', 'sigma'),
                                     ('sfid', 'mixed_6/conv', 'mu_s', 'sigma_s')):
        x = call['out']['samples'][layer].double().numpy()
        centred = (x - x.mean(0)) / np.sqrt(len(x) - 1)  # cov = centred.T @ centred
        # tr((S D)^(1/2)) for a diagonal D = sum of singular values of centred @ D^(1/2)
        tr_root = np.linalg.svd(centred * np.sqrt(var[sigma]), compute_uv=False).sum()
        expected = (((x.mean(0) - stats[mean])**2).sum() + (centred**2).sum() +
                    var[sigma].sum() - 2 * tr_root)
        assert out[name] == pytest.approx(expected, rel=1e-6)
    assert _warnings(logs) == [
        'GenerationMetric: FID from 5 samples: with fewer than 2048 (the Inception feature size) '
        'the covariance is singular and the value is dominated by the sample count (sFID '
        'likewise, below 2023); compare it only with FIDs from the same counts (published FIDs '
        'use 50,000 samples).']

    np.savez(tmp_path / 'fid_only.npz', arr_0=images, mu=stats['mu'], sigma=stats['sigma'])
    with pytest.raises(ValueError) as err:
        GenerationMetric(str(tmp_path / 'out2'), reference=str(tmp_path / 'fid_only.npz')).process(
            None, _square(2, 8))
    assert str(err.value) == (
        f"GenerationMetric: the reference {tmp_path / 'fid_only.npz'} holds the statistics "
        f"['mu', 'sigma'] but not ['mu_s', 'sigma_s']. FID and sFID come from one reference: an "
        f"ADM reference batch holds FID's (mu, sigma) and sFID's (mu_s, sigma_s) statistics. Use "
        f"a reference batch with all four (e.g. ADM's VIRTUAL_imagenet256_labeled.npz), or the "
        f"reference images (a folder, or an .npz with arr_0 only) to compute both.")
    # without FID the statistics play no part
    GenerationMetric(str(tmp_path / 'out3'), reference=str(tmp_path / 'fid_only.npz'),
                     metrics=['isc', 'prc']).process(None, _square(2, 8))
    np.savez(tmp_path / 'small.npz', arr_0=images, mu=np.zeros(64), sigma=np.eye(64),
             mu_s=stats['mu_s'], sigma_s=np.eye(7))
    with pytest.raises(ValueError, match=r"the statistics in the reference .*small\.npz have "
                                         r"other shapes than ADM's: mu \(64,\) \(expected "
                                         r"\(2048,\)\), sigma \(64, 64\) \(expected \(2048, "
                                         r"2048\)\), sigma_s \(7, 7\) \(expected \(2023, 2023\)\); "
                                         r"FID uses the 2048-d Inception pool features, sFID the "
                                         r"2023-d mixed_6/conv features\."):
        GenerationMetric(str(tmp_path / 'out4'), reference=str(tmp_path / 'small.npz')).process(
            None, _square(2, 8))
