"""The toolboxes' own inferencers on every family's configs, as a user of mmpretrain, mmseg or
mmdet calls them: ``ImageClassificationInferencer`` and ``FeatureExtractor`` (VisionLLaMA plain
and pyramid, ConvNeXt V2, ViTamin classifiers), ``MMSegInferencer`` (every UperNet family) and
``DetInferencer`` (every Mask R-CNN family).

Each is built from the shipped config (shrunk by the same options as the config tests) and a
checkpoint in the Runner's format (``state_dict`` + ``meta.dataset_meta``) holding seeded random
weights; its prediction on real images must equal, bit for bit, what the model's own
``test_step`` / ``extract_feat`` gives on the same image through the config's test pipeline, and
differ from a model of another seed (so the checkpoint was loaded). The trained quickstart
checkpoint goes through the classification inferencer and the feature extractor in
``tests/tools/test_train_test.py`` (``check_trained_digits_classifier`` below), where the fixture
that trains it lives.
"""
import argparse
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets.digits import DIGIT_CLASSES
from ..conftest import REPO
from .dense_opts import DET_CONFIGS, SEG_CONFIGS, det_opts, seg_opts
from .test_cls_configs import CLS, TINY_PLAIN
from .test_convnextv2_configs import FINETUNE_OPTS as CONVNEXTV2_FT
from .test_vitamin_configs import FINETUNE_OPTS as VITAMIN_FT

# every stage of the pyramid one block wide enough for its heads (the configs name 'small')
TINY_PYRAMID = ['model.backbone.arch._delete_=True',
                'model.backbone.arch.embed_dims=[32,64,96,128]',
                'model.backbone.arch.depths=[1,1,1,1]', 'model.backbone.arch.num_heads=[1,2,3,4]',
                'model.backbone.arch.ffn_dims=[64,128,256,256]']


def _shrunk(opts, drop, *extra):
    """``opts`` without the entries whose key starts with one of ``drop``, then ``extra``."""
    return [o for o in opts if not o.split('=')[0].startswith(drop)] + list(extra)


PLAIN_CLS = 'visionllama-plain-small-p16_8xb256-800e_in1k.py'
PYRAMID_CLS = 'visionllama-pyramid-small_8xb128-300e_in1k.py'
CLASSIFIERS = {
    f'configs/visionllama/{PLAIN_CLS}':
    _shrunk(CLS[PLAIN_CLS], ('model.backbone.arch', ), *TINY_PLAIN, 'model.head.in_channels=64'),
    f'configs/visionllama/{PYRAMID_CLS}':
    [*CLS[PYRAMID_CLS], *TINY_PYRAMID, 'model.head.in_channels=128'],
    'configs/convnextv2/convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py':
    [*CONVNEXTV2_FT, 'model.backbone.init_cfg=None'],
    'configs/vitamin/vitamin-small_clip-pre_8xb256-amp-coslr-50e_in1k.py': VITAMIN_FT,
}
PYRAMID_WIDTHS = ('model.backbone.arch', 'model.decode_head.in_channels',
                  'model.auxiliary_head.in_channels', 'model.neck.in_channels')
UPERNETS = {
    'configs/visionllama/upernet_visionllama-base-p16_mae-800e-pre_8xb2-amp-160k_ade20k-512x512.py':
    [],
    'configs/visionllama/upernet_visionllama-pyramid-small_8xb2-160k_ade20k-512x512.py':
    [*TINY_PYRAMID, 'model.decode_head.in_channels=[32,64,96,128]',
     'model.auxiliary_head.in_channels=96'],
    'configs/convnextv2/upernet_convnextv2-tiny_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py': [],
    'configs/vitamin/upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py': [],
}
MASK_RCNNS = {
    'configs/visionllama/mask-rcnn_visionllama-base-p16_mae-800e-pre_vitdet_8xb4-accum2-lsj-36e_coco.py':
    [],
    'configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_8xb2-ms-crop-3x_coco.py':
    [*TINY_PYRAMID, 'model.neck.in_channels=[32,64,96,128]'],
    'configs/convnextv2/mask-rcnn_convnextv2-tiny_fcmae-pre_fpn_8xb4-amp-lsj-3x_coco.py': [],
    'configs/vitamin/mask-rcnn_vitamin-small_clip-pre_fpn_8xb4-amp-lsj-3x_coco.py': [],
}
SHAPE_CLASSES = ('rectangle', 'disc', 'triangle')
# the neck and heads 32 wide (shipped: 256, and 1024 for the box head's fc): they, not the tiny
# backbones, would take most of the time
NARROW_HEADS = ['model.neck.out_channels=32', 'model.rpn_head.in_channels=32',
                'model.rpn_head.feat_channels=32',
                'model.roi_head.bbox_roi_extractor.out_channels=32',
                'model.roi_head.bbox_head.in_channels=32',
                'model.roi_head.bbox_head.conv_out_channels=32',
                'model.roi_head.bbox_head.fc_out_channels=64',
                'model.roi_head.mask_roi_extractor.out_channels=32',
                'model.roi_head.mask_head.in_channels=32',
                'model.roi_head.mask_head.conv_out_channels=32']


def _config(path, opts):
    """The config with ``--cfg-options``-style strings applied, as the tools apply them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    cfg = Config.fromfile(osp.join(REPO, path))
    if opts:
        cfg.merge_from_dict(parser.parse_args(['--cfg-options', *opts]).cfg_options)
    return cfg


def _seeded_model(cfg, scope, seed):
    """The config's model with its own initialisation under ``seed``, in eval mode."""
    init_default_scope(scope)
    from mmengine.registry import MODELS
    model_cfg = cfg.model.copy()
    if scope == 'mmpretrain' and 'data_preprocessor' in cfg:
        # a top-level data_preprocessor, as mmpretrain's get_model / Runner pick it up
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model.eval()


def _checkpoint(cfg, scope, path, dataset_meta, seed=0):
    """Save a seeded model as the Runner does (with the dataset's meta); return the model."""
    model = _seeded_model(cfg, scope, seed)
    save_checkpoint(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dataset_meta)),
                    str(path))
    return model


def _test_batch(cfg, img_path, **info):
    """One image through the config's whole test pipeline (loading included, annotations
    dropped), collated as the test dataloader does."""
    pipeline = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] != 'LoadAnnotations']
    return pseudo_collate([Compose(pipeline)(dict(img_path=img_path, **info))])


def _val_digits(digits_root, per_class):
    """The first ``per_class`` held-out images of each digit (all of them for None):
    [(path, label)]."""
    with open(osp.join(digits_root, 'meta', 'val.txt')) as f:
        rows = [line.split() for line in f]
    picked = []
    for label in range(10):
        picked += [(osp.join(digits_root, rel), label)
                   for rel, lab in rows if int(lab) == label][:per_class]
    return picked


@pytest.mark.parametrize('config', sorted(CLASSIFIERS))
def test_classification_inferencer_and_feature_extractor(config, digits_root, tmp_path):
    from mmpretrain.apis import FeatureExtractor, ImageClassificationInferencer
    cfg = _config(config, CLASSIFIERS[config])
    ckpt = tmp_path / 'epoch_1.pth'
    model = _checkpoint(cfg, 'mmpretrain', ckpt, dict(classes=DIGIT_CLASSES))
    other = _seeded_model(cfg, 'mmpretrain', seed=1)
    images = [path for path, _ in _val_digits(digits_root, 1)[:3]]

    inferencer = ImageClassificationInferencer(model=cfg, pretrained=str(ckpt))
    assert inferencer.classes == DIGIT_CLASSES  # from the checkpoint's dataset_meta
    extractor = FeatureExtractor(model=cfg, pretrained=str(ckpt))
    for img in images:
        result = inferencer(img)[0]
        batch = _test_batch(cfg, img)
        with torch.no_grad():
            expected = model.test_step(batch)[0].pred_score
            features = model.extract_feat(model.data_preprocessor(batch)['inputs'])
            unloaded = other.test_step(batch)[0].pred_score
        assert result['pred_scores'].shape == (10, )
        assert np.array_equal(result['pred_scores'], expected.numpy()), config
        assert not torch.allclose(unloaded, expected)
        label = int(expected.argmax())
        assert result['pred_label'] == label
        assert result['pred_score'] == pytest.approx(float(expected[label]), abs=0, rel=0)
        assert result['pred_class'] == DIGIT_CLASSES[label]

        got = extractor(img)[0]
        features = features if isinstance(features, tuple) else (features, )
        assert len(got) == len(features)
        for a, b in zip(got, features):
            assert torch.equal(a, b[0]), config


def check_trained_digits_classifier(config, ckpt, digits_root, per_class=3, train_per_class=5,
                                    min_top1=90.0):
    """The stock classification inferencer and feature extractor on a checkpoint trained on the
    digits: top-1 on ``per_class`` held-out images of each digit (None: the whole held-out split;
    chance: 10%), and a
    nearest-class-mean classifier on the extracted features (the means of ``train_per_class``
    training images of each digit). Returns (inferencer top-1, feature top-1) in percent."""
    from mmpretrain.apis import FeatureExtractor, ImageClassificationInferencer
    held_out = _val_digits(digits_root, per_class)
    inferencer = ImageClassificationInferencer(model=config, pretrained=ckpt)
    results = inferencer([path for path, _ in held_out], batch_size=len(held_out))
    assert [r['pred_class'] for r in results] == [DIGIT_CLASSES[r['pred_label']] for r in results]
    top1 = 100.0 * np.mean([r['pred_label'] == label for r, (_, label) in zip(results, held_out)])

    extractor = FeatureExtractor(model=config, pretrained=ckpt)
    train = [sorted(glob.glob(osp.join(digits_root, 'train', str(label), '*.png')))[:train_per_class]
             for label in range(10)]
    paths = sum(train, []) + [path for path, _ in held_out]
    feats = torch.stack([f[0] for f in extractor(paths, batch_size=len(paths))])
    feats = torch.nn.functional.normalize(feats, dim=1)
    means = torch.stack([feats[k * train_per_class:(k + 1) * train_per_class].mean(0)
                         for k in range(10)])
    nearest = (feats[10 * train_per_class:] @ means.T).argmax(1)
    feature_top1 = 100.0 * np.mean([int(n) == label for n, (_, label) in zip(nearest, held_out)])
    print(f'{osp.basename(config)}: ImageClassificationInferencer top-1 {top1:.1f}% on '
          f'{len(held_out)} held-out digits; nearest class mean of FeatureExtractor features '
          f'{feature_top1:.1f}%')
    assert top1 >= min_top1, top1
    assert feature_top1 >= min_top1, feature_top1
    return top1, feature_top1


@pytest.mark.parametrize('config', UPERNETS)
def test_mmseg_inferencer_equals_test_step(config, ade20k_root, tmp_path):
    from mmseg.apis import MMSegInferencer
    from mmseg.datasets import ADE20KDataset
    opts = SEG_CONFIGS[config]
    if UPERNETS[config]:
        opts = _shrunk(opts, PYRAMID_WIDTHS, *UPERNETS[config])
    cfg = _config(config, [*opts, *seg_opts(ade20k_root)])
    ckpt = tmp_path / 'iter_4.pth'
    model = _checkpoint(cfg, 'mmseg', ckpt, dict(ADE20KDataset.METAINFO))
    other = _seeded_model(cfg, 'mmseg', seed=1)
    img = sorted(glob.glob(osp.join(ade20k_root, 'images', 'validation', '*.jpg')))[0]

    inferencer = MMSegInferencer(model=cfg, weights=str(ckpt), device='cpu')
    assert inferencer.model.dataset_meta['classes'] == ADE20KDataset.METAINFO['classes']
    sample = inferencer(img, return_datasamples=True)
    labels = inferencer(img)['predictions']
    with torch.no_grad():
        expected = model.test_step(_test_batch(cfg, img))[0]
        unloaded = other.test_step(_test_batch(cfg, img))[0]
    assert sample.seg_logits.data.shape == (150, 64, 96)  # the fixture image's own size
    assert torch.equal(sample.seg_logits.data, expected.seg_logits.data), config
    assert torch.equal(sample.pred_sem_seg.data, expected.pred_sem_seg.data)
    assert np.array_equal(labels, expected.pred_sem_seg.data[0].numpy())
    assert not torch.allclose(unloaded.seg_logits.data, expected.seg_logits.data)


@pytest.mark.parametrize('config', MASK_RCNNS)
def test_det_inferencer_equals_test_step(config, coco_root, tmp_path):
    from mmdet.apis import DetInferencer
    shrink, lsj, _ = DET_CONFIGS[config]
    if MASK_RCNNS[config]:
        shrink = _shrunk(shrink, PYRAMID_WIDTHS, *MASK_RCNNS[config])
    cfg = _config(config, [*shrink, *NARROW_HEADS, *det_opts(coco_root, lsj)])
    ckpt = tmp_path / 'epoch_1.pth'
    model = _checkpoint(cfg, 'mmdet', ckpt, dict(classes=SHAPE_CLASSES))
    other = _seeded_model(cfg, 'mmdet', seed=1)
    img = sorted(glob.glob(osp.join(coco_root, 'val2017', '*.jpg')))[0]

    inferencer = DetInferencer(model=cfg, weights=str(ckpt), device='cpu', show_progress=False)
    assert inferencer.model.dataset_meta['classes'] == SHAPE_CLASSES
    got = inferencer(img, return_datasamples=True)['predictions'][0].pred_instances
    plain = inferencer(img, pred_score_thr=0.0)['predictions'][0]
    with torch.no_grad():
        expected = model.test_step(_test_batch(cfg, img, img_id=0))[0].pred_instances
        unloaded = other.test_step(_test_batch(cfg, img, img_id=0))[0].pred_instances
    assert len(got) == len(expected) == 20  # test_cfg.rcnn.max_per_img, shrunk to 20
    for key in ('bboxes', 'scores', 'labels', 'masks'):
        assert torch.equal(got[key], expected[key]), (config, key)
    assert got.masks.shape[1:] == (64, 96)  # pasted back at the image's own size
    assert plain['labels'] == expected.labels.tolist()
    assert plain['scores'] == expected.scores.tolist()
    assert not (len(unloaded) == len(expected)
                and torch.allclose(unloaded.scores, expected.scores))
