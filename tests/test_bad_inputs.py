"""One test per row of README.md "Bad inputs and the errors they get": each bad input fails at
once with an error that names what is wrong and where."""
import os.path as osp
import re
import sys

import pytest
import torch

import visionllama_mm  # noqa: F401  (registries and shims)
from visionllama_mm.models.backbones import PyramidVisionLLaMA, VisionLLaMA
from .conftest import REPO, run_python, run_tool

QUICKSTART = osp.join(REPO, 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py')
TINY = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
TINY_PYRAMID = dict(embed_dims=[16, 32, 32, 32], depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 2],
                    ffn_dims=[32, 64, 64, 64])


def _opts(digits_root, *extra):
    """The quickstart on the session's digits, in-process loading, 2 train / 1 val iterations."""
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    return ['--cfg-options',
            *(f'{d}.dataset.data_root={digits_root}' for d in loaders),
            *(f'{d}.num_workers=0' for d in loaders),
            *(f'{d}.persistent_workers=False' for d in loaders),
            'train_dataloader.dataset.indices=128', 'val_dataloader.dataset.indices=120',
            'test_dataloader.dataset.indices=120', *extra]


def _raises(exc_type, build):
    """The message of the ``exc_type`` that ``build()`` raises (compared whole by the tests)."""
    with pytest.raises(exc_type) as err:
        build()
    return str(err.value)


def _fails(args, timeout=600):
    """Run a tool that must fail; return its output."""
    proc = run_python(args, timeout=timeout)
    assert proc.returncode != 0, f'{" ".join(map(str, args))} exited 0:\n{proc.stdout[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory, digits_root):
    """A quickstart checkpoint after 2 iterations (tools/train.py)."""
    work = str(tmp_path_factory.mktemp('bad_inputs_train'))
    run_tool([sys.executable, 'tools/train.py', QUICKSTART, '--work-dir', work,
              *_opts(digits_root, 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1')])
    return osp.join(work, 'epoch_1.pth')


# --------------------------------------------------------------------------------------------------
# model construction (validation by the backbones)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('rate', [-0.1, 1.5])
def test_drop_path_rate_out_of_range(rate):
    assert _raises(ValueError, lambda: VisionLLaMA(
        arch=TINY, img_size=32, patch_size=4, drop_path_rate=rate)) == \
        f'VisionLLaMA: drop_path_rate must be in [0, 1), got {rate}.'


def test_rope_ratio_above_one():
    assert _raises(ValueError, lambda: VisionLLaMA(
        arch=TINY, img_size=32, patch_size=4, rope_ratio=1.5)) == \
        'VisionLLaMA: rope_ratio must be in (0, 1], got 1.5.'


def test_patch_size_zero():
    assert _raises(ValueError, lambda: VisionLLaMA(arch=TINY, img_size=32, patch_size=0)) == \
        'VisionLLaMA: patch_size must be an int >= 1, got 0.'


def test_float_num_heads():
    arch = dict(embed_dims=64, num_layers=2, num_heads=2.0, feedforward_channels=128)
    assert _raises(ValueError, lambda: VisionLLaMA(arch=arch, img_size=32, patch_size=4)) == \
        'VisionLLaMA: num_heads must be an int >= 1, got 2.0.'


def test_unknown_arch_lists_the_names():
    assert _raises(ValueError, lambda: VisionLLaMA(arch='huge')) == (
        "VisionLLaMA: unknown arch 'huge'; valid names: b, base, l, large, mae-b, mae-base, "
        "mae-l, mae-large, s, small, or a dict with keys ['embed_dims', 'num_layers', "
        "'num_heads', 'feedforward_channels'].")


def test_pyramid_window_size_zero():
    assert _raises(ValueError, lambda: PyramidVisionLLaMA(arch=TINY_PYRAMID, window_size=0)) == \
        'PyramidVisionLLaMA: window_size must be an int >= 1, got 0.'


@pytest.mark.parametrize('sr_ratios, message', [
    ((8, 4, 2), 'sr_ratios needs one entry per stage (4), got (8, 4, 2).'),
    # at img_size=224 the first stage grid is 56x56: 3 does not divide it
    ((3, 4, 2, 1), 'sr_ratios[0]=3 does not divide the stage-0 grid 56x56 (img_size (224, 224), '
                   'stride 4).'),
], ids=['wrong_length', 'not_dividing_stage_grid'])
def test_pyramid_sr_ratios(sr_ratios, message):
    assert _raises(ValueError, lambda: PyramidVisionLLaMA(
        arch=TINY_PYRAMID, img_size=224, sr_ratios=sr_ratios)) == f'PyramidVisionLLaMA: {message}'


def test_pyramid_empty_batch():
    model = PyramidVisionLLaMA(arch=TINY_PYRAMID, img_size=64)
    assert _raises(ValueError, lambda: model(torch.zeros(0, 3, 64, 64))) == (
        'PyramidVisionLLaMA: got an empty batch (shape (0, 3, 64, 64)); the data loader or the '
        'caller produced no images.')


# --------------------------------------------------------------------------------------------------
# --cfg-options typos
# --------------------------------------------------------------------------------------------------
def test_cfg_options_typo_in_train_py(digits_root):
    out = _fails([sys.executable, 'tools/train.py', QUICKSTART,
                  *_opts(digits_root, 'randomnes.seed=123', 'train_cfgg.max_epochs=1')])
    assert "randomnes.seed: the config has no top-level key 'randomnes'; did you mean " \
           "'randomness'?" in out, out[-2000:]
    assert "did you mean 'train_cfg'" in out


def test_cfg_options_typo_in_test_py(tiny_ckpt, digits_root):
    out = _fails([sys.executable, 'tools/test.py', QUICKSTART, tiny_ckpt,
                  *_opts(digits_root, 'test_evaluatr.topk=(1,)')])
    assert ("test_evaluatr.topk: the config has no top-level key 'test_evaluatr'; did you mean "
            "'test_evaluator' or 'val_evaluator'?") in out, out[-2000:]


def test_cfg_options_own_variables_and_nested_keys_stay_allowed():
    from mmengine.config import Config

    from visionllama_mm.engine.checks import check_cfg_options

    # a config with variables of its own (data_root, train_pipeline)
    cfg = Config.fromfile(osp.join(REPO, 'configs/lvm/vqgan/vqgan_tiny-f4_1xb8-1500it_sample-photos.py'))
    check_cfg_options(cfg, {'data_root': 'x', 'train_pipeline': [], 'model.tokenizer.newkey': 1,
                            'load_strict': False, 'model_wrapper_cfg.type': 'x'})
    assert _raises(ValueError, lambda: check_cfg_options(cfg, {'data_rot': 'x'})) == (
        "--cfg-options: unknown key(s):\n"
        "  data_rot: the config has no top-level key 'data_rot'; did you mean 'data_root'?")


# --------------------------------------------------------------------------------------------------
# checkpoints that do not fit the model
# --------------------------------------------------------------------------------------------------
def test_test_py_refuses_a_resnet18_state_dict(tmp_path, digits_root):
    import torchvision
    path = str(tmp_path / 'resnet18.pth')
    torch.save(torchvision.models.resnet18().state_dict(), path)
    out = _fails([sys.executable, 'tools/test.py', QUICKSTART, path, *_opts(digits_root)])
    m = re.search(r'checkpoint \S*resnet18.pth does not fit the model \(ImageClassifier\): '
                  r'(\d+) missing, (\d+) unexpected, 0 shape-mismatched keys', out)
    assert m, out[-3000:]
    assert int(m.group(1)) > 40 and int(m.group(2)) == 122  # every key of both sides
    assert 'not in the model (122): conv1.weight' in out and 'load_strict=False' in out


def test_test_py_refuses_own_checkpoint_under_another_arch(tiny_ckpt, digits_root):
    out = _fails([sys.executable, 'tools/test.py', QUICKSTART, tiny_ckpt,
                  *_opts(digits_root, 'model.backbone.arch.num_layers=2')])
    # the quickstart has 4 blocks of 12 tensors: blocks 2 and 3 are left over
    assert re.search(r'checkpoint \S*epoch_1.pth does not fit the model \(ImageClassifier\): '
                     r'0 missing, 24 unexpected, 0 shape-mismatched keys', out), out[-3000:]
    assert 'not in the model (24): backbone.layers.2.' in out, out[-3000:]
    assert ('To load only the matching tensors on purpose, set `load_strict = False` in the '
            'config or pass --cfg-options load_strict=False.') in out
    assert 'accuracy/top1' not in out


def test_partial_loading_is_explicit(tiny_ckpt, digits_root):
    out = run_tool([sys.executable, 'tools/test.py', QUICKSTART, tiny_ckpt,
                    *_opts(digits_root, 'model.backbone.arch.num_layers=2', 'load_strict=False')])
    assert 'load_strict=False, loading the matching tensors only' in out, out[-3000:]
    assert 'not in the model (24): backbone.layers.2.' in out, out[-3000:]
    assert re.search(r"'accuracy/top1': [\d.]+", out), out[-2000:]


def test_load_from_with_shape_mismatch_fails_in_train_py(tiny_ckpt, digits_root, tmp_path):
    out = _fails([sys.executable, 'tools/train.py', QUICKSTART, '--work-dir', str(tmp_path),
                  *_opts(digits_root, f'load_from={tiny_ckpt}', 'train_cfg.max_epochs=1',
                         'model.backbone.arch.feedforward_channels=128')])
    m = re.search(r'0 missing, 0 unexpected, (\d+) shape-mismatched keys', out)
    assert m and int(m.group(1)) == 8, out[-3000:]  # the two FFN projections of 4 blocks
    assert 'shape mismatch (8): backbone.layers.0.ffn.w12.weight (512, 96) in checkpoint vs ' \
           '(256, 96) in model' in out, out[-3000:]


def test_pretrained_init_cfg_reports_unmatched_keys(tmp_path, capfd):
    # a deliberately partial Pretrained load (strict=False: here 15 of 25 tensors, under the 90%
    # floor) loads the matching tensors and still names what is left
    src = VisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    state = {f'backbone.{k}': v for k, v in src.state_dict().items() if 'layers.1.' not in k}
    state['backbone.extra.weight'] = torch.zeros(1)
    torch.save({'state_dict': state}, tmp_path / 'pre.pth')
    model = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'pre.pth'), prefix='backbone.', strict=False))
    # read mmengine's current logger directly: its stream handler is bound to whatever stdout was
    # when an earlier test created it, which capfd may not see
    import io
    import logging

    from mmengine.logging import MMLogger
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    out = buf.getvalue() + ''.join(capfd.readouterr())
    assert 'loading the matching tensors only (15 of 25)' in out, out[-2000:]
    assert 'unexpected key in source state_dict: extra.weight' in out, out[-2000:]
    assert re.search(r'missing keys in source state_dict: .*layers\.1\.', out)
    loaded, reference = model.state_dict(), src.state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference if 'layers.0.' in k)


# --------------------------------------------------------------------------------------------------
# files that are not (whole) checkpoints
# --------------------------------------------------------------------------------------------------
@pytest.fixture
def not_checkpoints(tmp_path):
    rand = tmp_path / 'random.pth'
    rand.write_bytes(bytes(range(7, 256)) * 4)
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 20: top-1 98.1\n')
    return str(rand), str(text)


def test_random_and_text_files_are_not_checkpoints(not_checkpoints):
    from mmengine.runner.checkpoint import _load_checkpoint

    from visionllama_mm.converters import load_source
    rand, text = not_checkpoints
    for load in (lambda p: _load_checkpoint(p, map_location='cpu'), load_source):
        with pytest.raises(ValueError, match=r'random.pth is not a torch checkpoint: its first '
                                             r'bytes are .*Expected a file written by torch.save'):
            load(rand)
        with pytest.raises(ValueError, match=r"notes.pth is not a torch checkpoint: it looks like "
                                             r"a text file \(starts with 'epoch 20"):
            load(text)


def test_converter_cli_names_a_text_file(not_checkpoints, tmp_path):
    _, text = not_checkpoints
    out = _fails([sys.executable, 'tools/model_converters/vision_llama_official.py', text,
                  str(tmp_path / 'out.pth')])
    assert ("notes.pth is not a torch checkpoint: it looks like a text file (starts with 'epoch "
            "20: top-1 98.1\\n'). Expected a file written by torch.save") in out, out
    assert not osp.exists(tmp_path / 'out.pth')


def test_truncated_checkpoint(tiny_ckpt, tmp_path, digits_root):
    half = tmp_path / 'half.pth'
    with open(tiny_ckpt, 'rb') as f:
        data = f.read()
    half.write_bytes(data[:len(data) // 2])
    from mmengine.runner.checkpoint import _load_checkpoint
    message = _raises(ValueError, lambda: _load_checkpoint(str(half)))
    assert message.startswith(
        f'checkpoint {half} is truncated or corrupt: it starts as a torch.save zip archive but '
        f'has no zip directory at its end ({len(data) // 2} bytes). A run killed while saving '
        'leaves such a file; use the previous checkpoint'), message
    out = _fails([sys.executable, 'tools/test.py', QUICKSTART, str(half), *_opts(digits_root)])
    assert re.search(r'ValueError: checkpoint \S*half.pth is truncated or corrupt', out), \
        out[-2000:]


# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------
def _imagenet_format_config(tmp_path, root, ann_file, num_classes=10, kind='CustomDataset'):
    """The quickstart with its training set replaced by a stock mmpretrain dataset."""
    extra = "split='train'" if kind == 'ImageNet' else f"ann_file={ann_file!r}, data_prefix=''"
    cfg = tmp_path / 'stock_dataset.py'
    cfg.write_text(
        f"_base_ = [{QUICKSTART!r}]\n"
        f"model = dict(head=dict(num_classes={num_classes}))\n"
        f"train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(\n"
        f"    _delete_=True, type={kind!r}, data_root={root!r}, {extra},\n"
        f"    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))\n")
    return str(cfg)


def test_empty_train_txt_of_an_imagenet_format_dataset(tmp_path, digits_root):
    root = tmp_path / 'imagenet'
    (root / 'meta').mkdir(parents=True)
    (root / 'meta' / 'train.txt').write_text('')
    cfg = _imagenet_format_config(tmp_path, str(root), None, kind='ImageNet')
    out = _fails([sys.executable, 'tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
                  '--cfg-options', 'val_dataloader.dataset.data_root=' + digits_root])
    assert re.search(r'ValueError: ImageNet: annotation file \S*imagenet/meta/train.txt is empty, '
                     r'so the dataset has no samples', out), out[-3000:]


def test_label_out_of_range_names_file_and_line(tmp_path, digits_root):
    lines = open(osp.join(digits_root, 'meta', 'train.txt')).read().splitlines()
    path, _ = lines[6].rsplit(' ', 1)
    lines[6] = f'{path} 12'
    ann = tmp_path / 'train_bad.txt'
    ann.write_text('\n'.join(lines) + '\n')
    cfg = _imagenet_format_config(tmp_path, digits_root, str(ann))
    out = _fails([sys.executable, 'tools/train.py', cfg, '--work-dir', str(tmp_path / 'w'),
                  '--cfg-options', 'val_dataloader.dataset.data_root=' + digits_root])
    assert re.search(r'ValueError: train_dataloader: label 12 is out of range for the model, '
                     r'which has num_classes=10 \(labels 0..9\): \S*train_bad.txt:7: '
                     rf'"{re.escape(path)} 12", sample 6 \(\S+\); 1 of 1438 samples', out), \
        out[-3000:]


def test_digits_labels_beyond_the_head(digits_root, tmp_path):
    out = _fails([sys.executable, 'tools/train.py', QUICKSTART, '--work-dir', str(tmp_path),
                  *_opts(digits_root, 'model.head.num_classes=5')])
    assert re.search(r'train_dataloader: label [5-9] is out of range for the model, which has '
                     r'num_classes=5 \(labels 0..4\): \S*digits/meta/train.txt:\d+: .*Fix the '
                     r'annotation file, or num_classes in the model \(head and '
                     r'data_preprocessor\)\.', out), out[-3000:]


def test_diffusion_labels_beyond_the_denoiser(tmp_path):
    # label num_classes is the null class of classifier-free guidance: it would train as "no class"
    out = _fails([sys.executable, 'tools/train.py',
                  'configs/dit_llama/dit_llama-tiny-p2_1xb64-2000it_digits-8px.py',
                  '--work-dir', str(tmp_path / 'work'), '--cfg-options',
                  f'train_dataloader.dataset.data_root={tmp_path / "digits8"}',
                  'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
                  'model.denoiser.num_classes=5'])
    assert re.search(r'train_dataloader: label [5-9] is out of range for the model, which has '
                     r'num_classes=5 \(labels 0..4\): .*Fix the annotation file, or '
                     r'model\.denoiser\.num_classes\.', out), out[-3000:]


def test_digits_dataset_at_an_unrelated_folder(tmp_path):
    from visionllama_mm.datasets import DigitsDataset
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'cat.jpg').write_bytes(b'\xff\xd8')
    assert _raises(ValueError, lambda: DigitsDataset(data_root=str(tmp_path / 'photos'))) == (
        f'DigitsDataset: data_root {tmp_path}/photos exists but is not a folder written by '
        'DigitsDataset (it has no .complete marker). Point data_root at a new or empty folder (the '
        'data are written there on first use), or delete this one.')
    assert sorted(p.name for p in (tmp_path / 'photos').iterdir()) == ['cat.jpg']  # untouched


def test_sample_photo_tiles_bad_split_and_unrelated_folder(tmp_path):
    from visionllama_mm.datasets import SamplePhotoTiles
    with pytest.raises(ValueError, match=r'SamplePhotoTiles: split must be "train" or "val", '
                                         r"got 'test'"):
        SamplePhotoTiles(data_root=str(tmp_path / 'tiles'), split='test')
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'cat.jpg').write_bytes(b'\xff\xd8')
    with pytest.raises(ValueError, match=r'SamplePhotoTiles: data_root \S*photos exists but is '
                                         r'not a folder written by SamplePhotoTiles'):
        SamplePhotoTiles(data_root=str(tmp_path / 'photos'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['photos']  # no temporary folder left


# ------------------------------------------------------------------------------ ConvNeXt V2
TINY_CNX = dict(depths=[1, 1, 1, 1], channels=[8, 16, 24, 32])


def test_convnextv2_v1_arch_name():
    from visionllama_mm.models.backbones import ConvNeXtV2
    assert _raises(ValueError, lambda: ConvNeXtV2(arch='small')) == (
        "ConvNeXtV2: unknown arch 'small'; valid names: atto, base, femto, huge, large, nano, "
        "pico, tiny, or a dict with keys ['depths', 'channels'].")


def test_fcmae_input_not_a_multiple_of_32():
    from visionllama_mm.models.selfsup import SparseConvNeXtV2
    assert _raises(ValueError, lambda: SparseConvNeXtV2(TINY_CNX)(torch.randn(1, 3, 200, 200))) \
        == ('SparseConvNeXtV2: FCMAE masks 32x32-pixel cells; input size 200x200 must be a '
            'multiple of 32 (crop or resize to e.g. 224).')


def test_fcmae_mask_of_the_wrong_shape():
    from visionllama_mm.models.selfsup import SparseConvNeXtV2
    with pytest.raises(ValueError, match=r'mask must be \(B, L\) = \(2, 49\) for a '
                                         r'\(2, 3, 224, 224\) input, got \(2, 196\)'):
        SparseConvNeXtV2(TINY_CNX)(torch.randn(2, 3, 224, 224), torch.zeros(2, 196))


def test_convnextv2_converter_refuses_a_v1_checkpoint(tmp_path):
    import timm
    src = tmp_path / 'convnext_v1.pth'
    torch.save(timm.create_model('convnext_atto').state_dict(), src)
    out = _fails([sys.executable, 'tools/model_converters/convnextv2_official.py', str(src),
                  str(tmp_path / 'out.pth')])
    assert re.search(r'convnext_v1.pth: unrecognised checkpoint: none of the known release '
                     r'formats \(VisionLLaMA: .*; ConvNeXt V2: convnextv2-official, '
                     r'convnextv2-fcmae, timm-convnextv2[;)].*\) matches. Top-level keys: '
                     r"\['head\.fc\.bias', ", out), out
    assert not osp.exists(tmp_path / 'out.pth')  # nothing is written


@pytest.mark.parametrize('kwargs, message', [
    (dict(frozen_stages=5), 'ConvNeXtV2: frozen_stages must be in 0..4, got 5.'),
    (dict(out_indices=(4, )), 'ConvNeXtV2: out_indices must be stage numbers in -4..3, got (4,).'),
    (dict(layer_decay_type='blocks'),
     "ConvNeXtV2: layer_decay_type must be one of ('single', 'group'), got 'blocks'."),
], ids=['frozen_stages', 'out_indices', 'layer_decay_type'])
def test_convnextv2_bad_arguments(kwargs, message):
    from visionllama_mm.models.backbones import ConvNeXtV2
    with pytest.raises(ValueError) as err:
        ConvNeXtV2(TINY_CNX, **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize('kwargs, message', [
    (dict(mask_ratio=1.0), 'SparseConvNeXtV2: mask_ratio must be in (0, 1), got 1.0.'),
    (dict(dwconv_backend='spconv'),
     "SparseConvNeXtV2: dwconv_backend must be one of ('conv', 'gather'), got 'spconv'."),
    (dict(impl='dense'),
     "SparseConvNeXtV2: impl must be one of ('sparse', 'masked_dense'), got 'dense'."),
], ids=['mask_ratio', 'dwconv_backend', 'impl'])
def test_fcmae_encoder_bad_arguments(kwargs, message):
    from visionllama_mm.models.selfsup import SparseConvNeXtV2
    with pytest.raises(ValueError) as err:
        SparseConvNeXtV2(TINY_CNX, **kwargs)
    assert str(err.value) == message


def test_benchmark_variant_without_a_name():
    out = _fails([sys.executable, 'tools/analysis_tools/benchmark.py',
                  'configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py',
                  '--variant', 'model.backbone.impl=masked_dense'])
    assert ("--variant takes a NAME then key=value overrides, got "
            "['model.backbone.impl=masked_dense']") in out, out


# ------------------------------------------------------------------------------ ViTamin
TINY_VITAMIN = dict(stem_channels=8, channels=(8, 16), depths=(1, 2), embed_dims=32,
                    num_layers=2, num_heads=2)


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='huge'),
     "ViTamin: unknown arch 'huge'; valid names: b, base, l, l2, large, large2, s, small, xl, "
     "xlarge, or a dict with keys ['stem_channels', 'channels', 'depths', 'embed_dims', "
     "'num_layers', 'num_heads']."),
    (dict(arch={**TINY_VITAMIN, 'depth': 3}),
     "ViTamin: unknown arch keys ['depth']; valid keys: ['stem_channels', 'channels', 'depths', "
     "'embed_dims', 'num_layers', 'num_heads', 'feedforward_channels', 'pos_embed']."),
    (dict(out_type='avg_featmap', out_indices=(0, 1)),
     'ViTamin: out_type="avg_featmap" pools the transformer only (out_indices=-1); got '
     'out_indices=[0, 1]. Use out_type="featmap" for the MBConv stages.'),
    (dict(out_type='featmap', out_indices=(3, )),
     'ViTamin: out index 3 is out of range; the stages are 0 (MBConv, stride 4), 1 (MBConv, '
     'stride 8), 2 (transformer).'),
    (dict(frozen_stages=4), 'ViTamin: frozen_stages must be one of (-1, 0, 1, 2, 3), got 4.'),
    (None,  # a checkpoint pos_embed of 15 tokens into a 4x4 grid (img_size=64)
     'ViTamin: cannot resize checkpoint pos_embed of shape (1, 15, 32) (not a square grid) to '
     '(1, 16, 32).'),
], ids=['arch_name', 'arch_key', 'avg_featmap_out_indices', 'out_index', 'frozen_stages',
        'non_square_pos_embed'])
def test_vitamin_bad_arguments(kwargs, message):
    from visionllama_mm.models.backbones import ViTamin
    with pytest.raises(ValueError) as err:
        if kwargs is None:
            model = ViTamin(TINY_VITAMIN, img_size=64)
            model.load_state_dict({**model.state_dict(), 'pos_embed': torch.zeros(1, 15, 32)})
        else:
            ViTamin(**{'arch': TINY_VITAMIN, **kwargs})
    assert str(err.value) == message


# -------------------------------------------------------------------- CLIP and image-text data
TINY_CLIP = dict(
    type='ContrastiveCLIP', context_length=16,
    vision_backbone=dict(type='ViTamin', arch=TINY_VITAMIN, img_size=32),
    text_encoder=dict(type='CLIPTextTransformer', embed_dims=16, width=16, num_layers=1,
                      num_heads=2))


def test_clip_lock_text_without_a_text_checkpoint():
    from mmpretrain.registry import MODELS
    model = MODELS.build({**TINY_CLIP, 'lock_text': True})
    with pytest.raises(ValueError) as err:
        model.init_weights()
    assert str(err.value) == (
        'ContrastiveCLIP: lock_text=True but no text_checkpoint: the locked text tower would '
        "stay randomly initialised. Give model.text_checkpoint=<a CLIP checkpoint> (ours or "
        "OpenCLIP's).")


def test_clip_zero_shot_template_without_placeholder():
    from mmpretrain.registry import MODELS
    with pytest.raises(ValueError) as err:
        MODELS.build({**TINY_CLIP, 'zero_shot': dict(classes=['cat'],
                                                     templates=['a photo of a cat'])})
    assert str(err.value) == ('zero_shot templates must be format strings with exactly one {} '
                              '(e.g. "a photo of a {}."), got [\'a photo of a cat\'].')


def test_image_text_annotation_line_without_caption(tmp_path):
    from visionllama_mm.datasets import ImageTextDataset
    (tmp_path / 'ann.jsonl').write_text('{"image": "a.png", "caption": "ok"}\n'
                                        '{"image": "b.png", "text": "wrong key"}\n')
    with pytest.raises(ValueError) as err:
        ImageTextDataset('ann.jsonl', data_root=str(tmp_path))
    assert str(err.value) == (
        f"{tmp_path}/ann.jsonl:2: no caption (the dataset reads image_key='image', "
        "text_key='caption'); the line has ['image', 'text'].")


def test_webdataset_fewer_shards_than_readers(tmp_path):
    import tarfile

    from visionllama_mm.datasets import WebDatasetImageText
    with tarfile.open(tmp_path / 'only-000.tar', 'w'):
        pass
    loader = torch.utils.data.DataLoader(
        WebDatasetImageText(str(tmp_path / 'only-000.tar')), batch_size=1, num_workers=2,
        collate_fn=list)
    with pytest.raises(RuntimeError) as err:
        list(loader)
    assert ('WebDatasetImageText: 1 shards for 2 readers (1 ranks x 2 workers): every reader '
            'needs at least one shard. Use more shards or fewer data-loader workers.') in str(err.value)


# ---------------------------------------------------------------------------------------- LVM
TINY_LLAMA = dict(embed_dims=32, feedforward_channels=64, num_layers=1, num_heads=2)


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='2b'),
     "LLaMADecoder: unknown arch '2b'; valid names: 100m, 13b, 1b, 20b, 300m, 30b, 3b, 600m, 7b, "
     'debug, vqlm_100m, vqlm_13b, vqlm_1b, vqlm_20b, vqlm_300m, vqlm_30b, vqlm_3b, vqlm_600m, '
     "vqlm_7b, vqlm_debug, or a dict with keys ['embed_dims', 'feedforward_channels', "
     "'num_layers', 'num_heads']."),
    (dict(arch=dict(embed_dims=48, feedforward_channels=64, num_layers=1, num_heads=5)),
     'LLaMADecoder: embed_dims 48 is not divisible by num_heads 5.'),
], ids=['arch_name', 'heads'])
def test_llama_decoder_bad_arguments(kwargs, message):
    from visionllama_mm.models.backbones import LLaMADecoder
    with pytest.raises(ValueError) as err:
        LLaMADecoder(**kwargs)
    assert str(err.value) == message


def test_lvm_special_id_inside_the_codebook():
    from visionllama_mm.models.lvm import LVM
    with pytest.raises(ValueError) as err:
        LVM(backbone=dict(type='LLaMADecoder', arch=TINY_LLAMA), bos_id=5)
    assert str(err.value) == ('LVM: bos_id 5 must lie in [num_codes, vocab_size) = [8192, 8292): '
                              'ids below num_codes are VQ codes.')


def test_lvm_images_without_a_tokenizer():
    from visionllama_mm.models.lvm import LVM
    model = LVM(backbone=dict(type='LLaMADecoder', arch=TINY_LLAMA))
    with pytest.raises(ValueError) as err:
        model(torch.rand(1, 2, 3, 32, 32), mode='loss')
    assert str(err.value) == ('LVM: image inputs need a tokenizer; set model.tokenizer or feed '
                              'pre-tokenized token windows.')
