"""The ViTamin CLIP configs as shipped (all but the tiny digits ones, tested by
test_clip_learning.py): every one builds at its real size (meta device) with the exact
image-tower (+ projection) and text-tower parameter counts, which round to the authors' reported
numbers; each training config has the authors' recipe (global batch N x B, seen samples,
iterations as OpenCLIP counts them, warm-up, lr, betas, augmentation, decay rule, seed); LTT
configs lock the text tower; the
zero-shot configs evaluate at their resolution; the metafile lists them all. The ViTamin-S
recipe trains through tools/train.py and its zero-shot config tests the checkpoint through
tools/test.py on digit-caption shards (towers, data and class names shrunk with --cfg-options)."""
import glob
import os.path as osp
import re

import pytest
import torch
import yaml
from mmengine.config import Config
from mmengine.optim import DefaultOptimWrapperConstructor
from mmpretrain.registry import MODELS

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets.image_text import expand_shards
from ..conftest import REPO, run_tool

# image tower + CLIP projection at a resolution: (exact count, the authors' reported M). LTT
# image towers project to E = 768 (not reported separately).
IMAGE = {
    ('S', 224): (22_025_152, '22.03'), ('B', 224): (87_525_248, '87.53'),
    ('S-LTT', 224): (22_172_608, None), ('B-LTT', 224): (87_721_856, None),
    ('L', 224): (333_318_048, '333.3'), ('L', 256): (333_379_488, '333.4'),
    ('L', 336): (333_568_928, '333.6'), ('L', 384): (333_707_168, '333.7'),
    ('L2', 224): (333_580_192, '333.6'), ('L2', 256): (333_641_632, '333.6'),
    ('L2', 336): (333_831_072, '333.8'), ('L2', 384): (333_969_312, '334.0'),
    # no position embedding: the same count at every resolution
    **{('XL', r): (436_054_080, '436.1') for r in (224, 256, 336, 384)},
}
# text tower: token embedding 49408 x W, positional 77 x W, blocks, ln_final, text_projection W x E
TEXT = {'S': (40_444_032, '40.44'), 'B': (63_428_096, '63.43'), 'L': (123_650_304, '123.65'),
        'L2': (354_032_640, '354.0'), 'XL': (488_722_176, '488.7')}
TEXT['S-LTT'] = TEXT['B-LTT'] = TEXT['L']  # OpenCLIP ViT-L/14's text shape, 12/768/12

SHORT = dict(samples=1_280_000_000, epochs=1, shards=128_001, lr=5e-4, betas=(0.9, 0.98),
             warmup=500, scale=(0.9, 1.0), jitter=False)
LONG = dict(samples=12_800_000_000, epochs=10, shards=140_090, lr=2e-3, betas=(0.9, 0.95),
            warmup=782, scale=(0.4, 1.0), jitter=True)
# training config -> (variant, recipe) with the authors' global batch (their yaml configs)
TRAIN = {
    'clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py': ('S', dict(SHORT, batch=8192)),
    'clip_vitamin-base_32xb256-amp-coslr-1.28b_datacomp1b.py': ('B', dict(SHORT, batch=8192)),
    'clip_vitamin-large_64xb256-amp-coslr-1.28b_datacomp1b.py': ('L', dict(SHORT, batch=16384)),
    'clip-ltt_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py':
        ('S-LTT', dict(SHORT, batch=8192)),
    'clip-ltt_vitamin-base_32xb256-amp-coslr-1.28b_datacomp1b.py':
        ('B-LTT', dict(SHORT, batch=8192)),
    'clip_vitamin-large_280xb322-amp-coslr-12.8b_datacomp1b.py': ('L', dict(LONG, batch=90160)),
    'clip_vitamin-large2_280xb322-amp-coslr-12.8b_datacomp1b.py':
        ('L2', dict(LONG, batch=90160, warmup=4436)),
    'clip_vitamin-xlarge_224xb403-amp-coslr-12.8b_datacomp1b.py':
        ('XL', dict(LONG, batch=90272, warmup=4436)),
}
# zero-shot config of a released model -> (variant, resolution), with the authors' IN top-1
# (README.md:69-81, MODEL_HUB.md; XL-336 is their 40B-sample run)
ZERO_SHOT_TOP1 = {('S', 224): 62.2, ('B', 224): 68.9,
                  ('L', 224): 80.8, ('L', 256): 81.2, ('L', 336): 81.6, ('L', 384): 81.8,
                  ('L2', 224): 80.9, ('L2', 256): 81.5, ('L2', 336): 81.8, ('L2', 384): 82.1,
                  ('XL', 256): 82.1, ('XL', 336): 82.7, ('XL', 384): 82.6}
SIZE = {'S': 'small', 'B': 'base', 'L': 'large', 'L2': 'large2', 'XL': 'xlarge'}
ZERO_SHOT = {f'clip_vitamin-{SIZE[v]}{"" if r == 224 else f"-{r}"}_zeroshot-cls_in1k.py': (v, r)
             for v, r in ZERO_SHOT_TOP1}
CONFIGS = {**{k: (v, 224) for k, (v, _) in TRAIN.items()}, **ZERO_SHOT}
# the retrieval configs: tests/models/multimodal/test_clip_retrieval.py
SHIPPED = sorted(osp.basename(p) for p in glob.glob(osp.join(REPO, 'configs/vitamin/clip*.py'))
                 if 'digits' not in p and '_zeroshot-retrieval_' not in p)

MEAN = [0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255]
STD = [0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255]


def _cfg(name):
    return Config.fromfile(osp.join(REPO, 'configs/vitamin', name))


def _iterations(recipe):
    """OpenCLIP's count (training/data.py:409-414, main.py:425): an epoch of 1.28B samples is
    ceil(1.28B / global batch) batches rounded up to a multiple of the recipe's 6 data-loader
    workers, times the epochs."""
    batches = -(-(recipe['samples'] // recipe['epochs']) // recipe['batch'])
    return recipe['epochs'] * -(-batches // 6) * 6


def test_openclip_iteration_counts():
    assert [_iterations(dict(SHORT, batch=8192)), _iterations(dict(SHORT, batch=16384)),
            _iterations(dict(LONG, batch=90160)), _iterations(dict(LONG, batch=90272))] == [
        156_252, 78_126, 142_020, 141_840]


def _rounds_to(count, reported):
    decimals = len(reported.split('.')[1])
    return f'{count / 1e6:.{decimals}f}' == reported


def test_every_clip_config_is_listed():
    assert SHIPPED == sorted(CONFIGS)


def test_the_exact_counts_round_to_the_reported_ones():
    for count, reported in [*IMAGE.values(), *TEXT.values()]:
        assert reported is None or _rounds_to(count, reported), (count, reported)


def test_metafile_entries():
    """One metafile entry per config: image + text parameters, the recipe's batch and
    iterations for training configs (not run here: no results), the authors' zero-shot top-1
    for the released-weight configs."""
    with open(osp.join(REPO, 'configs/vitamin/metafile.yml')) as f:
        models = {m['Name'] + '.py': m for m in yaml.safe_load(f)['Models']
                  if m['Name'].startswith('clip') and 'digits' not in m['Name']}
    assert sorted(models) == sorted(CONFIGS)
    for name, (variant, res) in CONFIGS.items():
        meta, results = models[name]['Metadata'], models[name]['Results']
        assert models[name]['Config'] == f'configs/vitamin/{name}'
        assert meta['Parameters'] == IMAGE[(variant, res)][0] + TEXT[variant][0], name
        if name in TRAIN:
            recipe = TRAIN[name][1]
            assert results is None
            assert meta['Batch Size'] == recipe['batch']
            assert meta['Iterations'] == _iterations(recipe)
        else:
            assert results[0]['Metrics'] == {'Top 1 Accuracy': ZERO_SHOT_TOP1[(variant, res)]}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_clip_config_builds_with_the_exact_counts(name):
    variant, res = CONFIGS[name]
    cfg = _cfg(name)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert cfg.model.vision_backbone.img_size == res
    image = sum(p.numel() for p in model.visual.parameters()) + model.visual_proj.weight.numel()
    text = sum(p.numel() for p in model.text.parameters())
    assert (image, text) == (IMAGE[(variant, res)][0], TEXT[variant][0])
    assert (model.visual.pos_embed is None) == (variant == 'XL')
    assert model.lock_text == variant.endswith('LTT')
    if model.lock_text:
        assert not any(p.requires_grad for p in model.text.parameters())
        assert all(p.requires_grad for p in model.visual.parameters())
        assert cfg.model.text_checkpoint.endswith('.bin')
    # OpenAI's ImageNet protocol at the model's resolution: short side, bicubic, centre crop
    assert cfg.model.zero_shot == dict(classes='imagenet', templates='openai_imagenet')
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert (loader.dataset.type, loader.dataset.split) == ('ImageNet', 'val')
        load, resize, crop, pack = loader.dataset.pipeline
        assert (resize.type, resize.scale, resize.edge, resize.interpolation, resize.backend) == (
            'ResizeEdge', res, 'short', 'bicubic', 'pillow')
        assert (crop.type, crop.crop_size) == ('CenterCrop', res)
    assert cfg.test_evaluator == dict(type='Accuracy', topk=(1, 5))
    pre = cfg.model.data_preprocessor
    assert (pre.mean, pre.std, pre.to_rgb) == (MEAN, STD, True)


@pytest.mark.parametrize('name', sorted(TRAIN))
def test_clip_recipe(name):
    variant, recipe = TRAIN[name]
    cfg = _cfg(name)
    n, b = map(int, re.search(r'_(\d+)xb(\d+)-', name).groups())
    assert n * b == recipe['batch'] == cfg.auto_scale_lr.base_batch_size
    assert cfg.train_dataloader.batch_size == b
    iters = _iterations(recipe)
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=10000)
    # OpenCLIP: seed 0 (the authors' configs), offset by the rank (main.py:263)
    assert cfg.randomness == dict(seed=0, diff_rank_seed=True, deterministic=False)
    warm, cos = cfg.param_scheduler
    assert (warm.type, warm.by_epoch, warm.begin, warm.end) == (
        'LinearLR', False, 0, recipe['warmup'])
    assert warm.start_factor == pytest.approx(1 / recipe['warmup'])
    assert (cos.type, cos.by_epoch, cos.begin, cos.end, cos.eta_min) == (
        'CosineAnnealingLR', False, recipe['warmup'], iters, 0.0)
    opt = cfg.optim_wrapper
    assert (opt.type, opt.dtype) == ('AmpOptimWrapper', 'bfloat16')
    assert opt.optimizer == dict(type='AdamW', lr=recipe['lr'], weight_decay=0.2,
                                 betas=recipe['betas'], eps=1e-6)
    # streamed DataComp-1B shards, one pass per 1.28B samples
    loader = cfg.train_dataloader
    data = loader.dataset
    assert loader.sampler is None and data.type == 'WebDatasetImageText'
    assert loader.drop_last  # a partial batch would break the cross-rank feature gather
    assert data.num_samples == recipe['samples']
    assert len(expand_shards(data.shards)) == recipe['shards']
    crop, *jitter, tokenize, pack = data.pipeline
    assert (crop.type, crop.scale, crop.crop_ratio_range, crop.interpolation) == (
        'RandomResizedCrop', 224, recipe['scale'], 'bicubic')
    if recipe['jitter']:
        apply, gray = jitter
        assert (apply.type, apply.prob, gray.type, gray.prob) == (
            'RandomApply', 0.8, 'RandomGrayscale', 0.2)
        assert apply.transforms == [dict(type='ColorJitter', brightness=0.32, contrast=0.32,
                                         saturation=0.32, hue=0.08)]
    else:
        assert jitter == []
    assert tokenize == dict(type='TokenizeText', context_length=77)
    assert pack == dict(type='PackInputs', algorithm_keys=['text_tokens'])
    model = cfg.model
    assert model.context_length == 77
    assert model.vision_backbone.drop_path_rate == 0.1
    assert model.vision_backbone.with_cp and model.text_encoder.with_cp


def test_no_decay_on_norms_biases_and_logit_scale():
    """OpenCLIP's rule (training/main.py:321): weight decay on every >= 2-D tensor (position and
    token embeddings and text_projection included), none on norms, biases and logit_scale."""
    cfg = _cfg('clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    opt = dict(type='OptimWrapper', optimizer=cfg.optim_wrapper.optimizer)
    wrapper = DefaultOptimWrapperConstructor(opt, cfg.optim_wrapper.paramwise_cfg)(model)
    decay = {id(p): g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    for name, p in model.named_parameters():
        assert decay[id(p)] == (0.2 if p.ndim >= 2 else 0.0), name
    assert decay[id(model.logit_scale)] == 0.0 and model.logit_scale.ndim == 0


def test_small_recipe_trains_and_its_zero_shot_config_tests(digits_root, tmp_path, python):
    """2 iterations of the shipped ViTamin-S recipe (tiny towers, 32-px crops, the digit-caption
    shards; its augmentation, tokenizer, bf16 AMP and streamed loader as shipped), then
    tools/test.py with the ViTamin-S zero-shot config on that checkpoint (10 class names,
    2 templates, the held-out digits)."""
    caps = str(tmp_path / 'caps')
    run_tool([python, 'tools/dataset_converters/digit_captions.py', digits_root, caps,
              '--shards', '2'])
    model = ['model.vision_backbone.arch._delete_=True',
             'model.vision_backbone.arch.stem_channels=8',
             'model.vision_backbone.arch.channels=(8,16)',
             'model.vision_backbone.arch.depths=(1,1)', 'model.vision_backbone.arch.embed_dims=32',
             'model.vision_backbone.arch.num_layers=1', 'model.vision_backbone.arch.num_heads=2',
             'model.vision_backbone.img_size=32', 'model.text_encoder.embed_dims=16',
             'model.text_encoder.proj_dims=16', 'model.text_encoder.num_layers=1',
             'model.text_encoder.num_heads=2',
             "model.zero_shot.classes=['zero','one','two','three','four','five','six','seven',"
             "'eight','nine']", "model.zero_shot.templates=['a photo of a {}.','the digit {}.']",
             *(f'{s}_dataloader.{k}' for s in ('val', 'test') for k in (
                 'dataset.type=DigitsDataset', f'dataset.data_root={digits_root}',
                 'dataset.split=val', 'num_workers=0', 'persistent_workers=False',
                 'batch_size=120', 'dataset.pipeline.1.scale=32',
                 'dataset.pipeline.2.crop_size=32'))]
    train = [f'train_dataloader.dataset.data_root={caps}',
             'train_dataloader.dataset.shards=train-{00000..00001}.tar',
             'train_dataloader.dataset.num_samples=1438', 'train_dataloader.batch_size=8',
             'train_dataloader.num_workers=1', 'train_dataloader.dataset.pipeline.0.scale=32',
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'param_scheduler.0.end=1', 'param_scheduler.1.begin=1', 'param_scheduler.1.end=2',
             'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1']
    work = str(tmp_path / 'work')
    out = run_tool([python, 'tools/train.py',
                    'configs/vitamin/clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py',
                    '--work-dir', work, '--cfg-options', *model, *train])
    assert 'Iter(train) [2/2]' in out and 'accuracy/top1' in out
    out = run_tool([python, 'tools/test.py',
                    'configs/vitamin/clip_vitamin-small_zeroshot-cls_in1k.py',
                    osp.join(work, 'iter_2.pth'), '--work-dir', work, '--cfg-options', *model])
    assert re.search(r'accuracy/top1: [\d.]+\s+accuracy/top5: [\d.]+', out), out[-2000:]
