"""The DataComp zero-shot suite: its task table, the generated configs, the webdataset test sets
(written here in clip_benchmark's real layout) and the metrics mmpretrain lacks, each against a
hand computation."""
import io
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import WdsBenchmarkDataset
from visionllama_mm.evaluation.datacomp import (CONFIG_DIR, FAMILIES, TASKS, ImageTextRecall,
                                                MacroF1, MeanPerClassRecall, WorstGroupAccuracy,
                                                family_config, task_by_name, zero_shot_weights)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CLIP = osp.join(REPO, 'configs', 'vitamin', 'clip_vitamin-tiny_1xb64-300it_digits.py')

# the fixture's tasks: folder -> what it holds
FIXTURE_TASKS = ('cifar10', 'vtab/pets', 'retrieval/flickr_1k_test_image_text_retrieval',
                 'wilds/fmow', 'fairness/dollar_street')


def _png(rng: np.random.Generator, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, 'PNG')
    return buf.getvalue()


def _npy(vector) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(vector, dtype=np.int64))
    return buf.getvalue()


def _write_shards(folder: str, samples: list, per_shard: int = 4) -> None:
    """``samples``: dicts of member extension -> bytes, written as test/<i>.tar + nshards.txt."""
    os.makedirs(osp.join(folder, 'test'), exist_ok=True)
    shards = [samples[i:i + per_shard] for i in range(0, len(samples), per_shard)]
    for s, shard in enumerate(shards):
        with tarfile.open(osp.join(folder, 'test', f'{s}.tar'), 'w') as tar:
            for i, sample in enumerate(shard):
                for ext, data in sample.items():
                    info = tarfile.TarInfo(f's{s:03d}_{i:04d}.{ext}')
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    with open(osp.join(folder, 'test', 'nshards.txt'), 'w') as f:
        f.write(f'{len(shards)}\n')


def _write_lines(path: str, lines) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def write_datacomp_fixture(root: str, seed: int = 0) -> dict:
    """Tiny test sets of five tasks in clip_benchmark's webdataset layout under ``root``
    (the folders DataComp's download script writes); returns folder -> sample count."""
    rng = np.random.default_rng(seed)
    counts = {}
    classes = ['cat', 'dog', 'ship', 'truck', 'horse', 'frog', 'bird']
    templates = ['a photo of a {c}.', 'a blurry photo of the {c}.']
    for key in FIXTURE_TASKS:
        task = task_by_name(key)
        folder = osp.join(root, task.folder)
        if task.family == 'retrieval':
            samples = [dict(png=_png(rng), txt='\n'.join(
                f'caption {j} of picture {i} with a {classes[(i + j) % 7]}' for j in range(5))
                .encode()) for i in range(6)]
            _write_shards(folder, samples)
            _write_lines(osp.join(folder, 'dataset_type.txt'), ['retrieval'])
        else:
            n = 10
            labels = rng.integers(0, len(classes), n)
            samples = []
            for i, label in enumerate(labels):
                sample = dict(png=_png(rng), cls=f'{label}'.encode())
                if task.family in ('wilds_worst_region', 'fairness_top5_worst_income'):
                    sample['npy'] = _npy([i % 3, 2016, label])  # group, year, y
                samples.append(sample)
            _write_shards(folder, samples)
            _write_lines(osp.join(folder, 'classnames.txt'), classes)
            _write_lines(osp.join(folder, 'zeroshot_classification_templates.txt'), templates)
        counts[task.folder] = len(samples)
    return counts


@pytest.fixture(scope='module')
def datacomp_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('datacomp'))
    write_datacomp_fixture(root)
    return root


# ------------------------------------------------------------------------------------- table
def test_table_has_datacomps_40_tasks_and_38_in_the_average():
    assert len(TASKS) == 40 and len({t.key for t in TASKS}) == 40
    counted = [t for t in TASKS if t.in_average]
    assert len(counted) == 38
    assert {t.name for t in TASKS if not t.in_average} == {'FairFace', 'UTKFace'}
    groups = {g: sorted(t.name for t in counted if t.group == g)
              for g in ('imagenet', 'shift', 'vtab', 'retrieval')}
    assert groups['imagenet'] == ['ImageNet 1k']
    assert len(groups['shift']) == 6 and 'ObjectNet' in groups['shift']
    assert len(groups['vtab']) == 13 and 'SUN397' in groups['vtab']
    assert groups['retrieval'] == ['Flickr', 'MSCOCO', 'WinoGAViL']
    mpcr = sorted(t.name for t in TASKS if t.metric == 'mean_per_class_recall')
    assert mpcr == ['Caltech-101', 'FGVC Aircraft', 'Oxford Flowers-102', 'Oxford-IIIT Pet']
    assert {t.name: t.metric for t in TASKS if t.metric not in ('acc1', 'mean_per_class_recall',
                                                                '')} == {
        'Flickr': 'mean_recall@1', 'MSCOCO': 'mean_recall@1', 'WinoGAViL': 'jaccard_score_10-12',
        'iWildCam': 'F1-macro_all', 'FMoW': 'acc_worst_region', 'Dollar Street': 'acc_top5_wg',
        'GeoDE': 'acc_wg'}
    # folders as DataComp's download_evalsets.py names them
    assert task_by_name('vtab/pets').folder == 'wds_vtab-pets_test'
    assert task_by_name('Dollar Street').folder == 'wds_dollar_street_test'
    assert task_by_name('wilds/fmow').repo == 'djghosh/wds_wilds-fmow_test'
    assert [t.name for t in TASKS if t.in_average and not t.supported] == ['WinoGAViL']
    with pytest.raises(KeyError, match="DataComp has no task 'cifar11'"):
        task_by_name('cifar11')


def test_generated_configs_equal_what_the_table_gives():
    families = {t.family for t in TASKS if t.supported}
    assert families == set(FAMILIES)
    on_disk = sorted(os.listdir(osp.join(REPO, CONFIG_DIR)))
    assert on_disk == sorted(f'{f}.py' for f in FAMILIES)
    for family in FAMILIES:
        with open(osp.join(REPO, CONFIG_DIR, f'{family}.py')) as f:
            assert f.read() == family_config(family), \
                f'{family}.py differs from the table: run datacomp_eval.py --write-configs'
    # every supported task is in exactly one family config
    listed = [line for f in FAMILIES for line in family_config(f).splitlines()
              if line.startswith('    dict(key=')]
    assert len(listed) == sum(t.supported for t in TASKS) == 37


# ---------------------------------------------------------------------------------- metrics
def _samples(scores, labels, groups=None):
    out = []
    for i, (s, y) in enumerate(zip(scores, labels)):
        d = dict(pred_score=torch.as_tensor(s, dtype=torch.float32), gt_label=torch.tensor([y]))
        if groups is not None:
            d['wds_metadata'] = np.array([groups[i], 7])
        out.append(d)
    return out


def _evaluate(metric, samples):
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def test_classification_metrics_against_scikit_learn_and_by_hand():
    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 4, 4, 4, 4, 0])  # class 3 has no sample
    scores = rng.random((len(labels), 5))
    pred = scores.argmax(1)
    out = _evaluate(MeanPerClassRecall(), _samples(scores, labels))
    assert out['mean_per_class_recall'] == pytest.approx(
        100 * balanced_accuracy_score(labels, pred))
    by_hand = np.mean([np.mean(pred[labels == c] == c) for c in (0, 1, 2, 4)])
    assert out['mean_per_class_recall'] == pytest.approx(100 * by_hand)
    out = _evaluate(MacroF1(), _samples(scores, labels))
    assert out['macro_f1'] == pytest.approx(
        100 * f1_score(labels, pred, average='macro', labels=[0, 1, 2, 4]))

    # worst group: 3 samples in group 0 (2 right), 2 in group 1 (both right), 1 in group 5
    scores = torch.eye(4)[[0, 1, 2, 3, 0, 1]] + 0.01 * torch.arange(4)
    labels = [0, 1, 3, 3, 0, 2]
    groups = [0, 0, 0, 1, 1, 5]
    out = _evaluate(WorstGroupAccuracy(topk=1), _samples(scores, labels, groups))
    assert out['top1_group0'] == pytest.approx(100 * 2 / 3)
    assert out['top1_group1'] == 100 and out['top1_group5'] == 0
    assert out['top1'] == 0 and out['top1_all'] == pytest.approx(100 * 4 / 6)
    out = _evaluate(WorstGroupAccuracy(topk=1, exclude=[5]), _samples(scores, labels, groups))
    assert out['top1'] == pytest.approx(100 * 2 / 3)
    # top-2: the second-best score of each row is class 3 (the 0.01 * index tie-break)
    out = _evaluate(WorstGroupAccuracy(topk=2), _samples(scores, labels, groups))
    assert out['top2_group0'] == 100 and out['top2_group5'] == 0
    with pytest.raises(ValueError, match='has no metadata'):
        _evaluate(WorstGroupAccuracy(), _samples(scores, labels))


def test_image_text_recall_by_hand():
    # 3 images, captions 2 / 1 / 2; unit vectors so similarities are easy to read
    img = torch.eye(3)
    texts = [torch.tensor([[1., 0, 0], [0, 0.9, 0.1]]),  # image 0: one caption near image 1
             torch.tensor([[0.2, 0.8, 0]]),               # image 1: nearest is image 1
             torch.tensor([[0.9, 0, 0.1], [0, 0, 1.]])]   # image 2: first caption nearest image 0
    metric = ImageTextRecall(topk=(1, 2))
    metric.process(None, [dict(image_feat=i, text_feats=t) for i, t in zip(img, texts)])
    out = metric.compute_metrics(metric.results)
    # text -> image @1: captions right: 0a yes, 0b no, 1 yes, 2a no, 2b yes -> 3 / 5
    assert out['t2i_recall@1'] == pytest.approx(60)
    # image -> text @1: image 0's best caption is 0a (1.0 vs 2a 0.9): yes; image 1: 0b (0.9) vs
    # 1 (0.8): no; image 2: 2b (1.0): yes -> 2 / 3
    assert out['i2t_recall@1'] == pytest.approx(100 * 2 / 3)
    assert out['mean_recall@1'] == pytest.approx((60 + 100 * 2 / 3) / 2)
    # @2: every image finds a caption; caption 0b's two nearest images are 1 and 2 -> 4 / 5
    assert out['i2t_recall@2'] == 100 and out['t2i_recall@2'] == pytest.approx(80)


# ---------------------------------------------------------------------------------- dataset
def test_wds_dataset_reads_the_clip_benchmark_layout(datacomp_root):
    folder = osp.join(datacomp_root, 'wds_wilds-fmow_test')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    ds = WdsBenchmarkDataset(folder, task='wilds/fmow', with_metadata=True, pipeline=pipeline)
    assert len(ds) == 10 and ds.metainfo['classes'][:2] == ['cat', 'dog']
    assert ds.metainfo['templates'] == ['a photo of a {}.', 'a blurry photo of the {}.']
    item = ds[3]
    assert tuple(item['inputs'].shape) == (3, 32, 32)
    sample = item['data_samples']
    assert sample.wds_metadata.tolist()[:2] == [0, 2016]
    assert int(sample.gt_label) == sample.wds_metadata[2]
    # images in shard order: item 3 is the 4th image of shard 0, decoded as BGR
    with tarfile.open(osp.join(folder, 'test', '0.tar')) as tar:
        png = tar.extractfile('s000_0003.png').read()
    rgb = np.asarray(Image.open(io.BytesIO(png)))
    assert torch.equal(item['inputs'], torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1))

    retrieval = WdsBenchmarkDataset(osp.join(datacomp_root, 'wds_flickr30k'),
                                    pipeline=pipeline)
    assert retrieval.dataset_type == 'retrieval' and len(retrieval) == 6
    assert retrieval[5]['data_samples'].captions[0] == 'caption 0 of picture 5 with a frog'


def test_missing_dataset_folder_names_it_and_the_download_command(tmp_path):
    folder = str(tmp_path / 'wds_cars_test')
    with pytest.raises(FileNotFoundError) as err:
        WdsBenchmarkDataset(folder, task='cars', hub_repo='djghosh/wds_cars_test')
    assert (f'the dataset folder {folder} is missing. Download it with: huggingface-cli '
            f'download djghosh/wds_cars_test --repo-type dataset --local-dir {folder}'
            ) in str(err.value)
    assert 'download_evalsets.py' in str(err.value)


def test_zero_shot_weights_equal_the_models_own_classifier():
    from mmengine.config import Config

    from visionllama_mm.registry import MODELS
    cfg = Config.fromfile(TINY_CLIP)
    classes, templates = ['cat', 'dog', 'ship'], ['a photo of a {}.', 'the {} itself']
    cfg.model.zero_shot = dict(classes=classes, templates=templates)
    torch.manual_seed(0)
    model = MODELS.registries()[0].build(cfg.model).eval()
    torch.testing.assert_close(zero_shot_weights(model, classes, templates, batch_size=4),
                               model.class_embeddings('cpu'), rtol=0, atol=1e-6)
