"""The DiT-LLaMA / SiT-LLaMA ImageNet 256x256 configs (VisionLLaMA Tables 1, 8, 9) and baselines.

Every config of the paper's tables exists, with the recipe of DiT's / SiT's train.py (AdamW 1e-4
constant, weight decay 0, 8 x 32 = 256 images per step, EMA 0.9999, 400k steps or 2352k, SD VAE
latents x 0.18215, DDPM 1000 linear / learned sigma / 250 steps or linear-velocity flow matching
with the 250-step SDE sampler, guidance 1.5 for DiT and 1.0 for SiT, fp16 AMP for the LLaMA models
and fp32 for the DiT / SiT baselines, seed 0 + rank, FID-50K uniform random class labels), and
builds on the meta device with the denoiser's exact parameter count (the frozen VAE is not a
parameter). One DiT-LLaMA config trains through tools/train.py on a tiny ImageNet-layout folder
with a tiny saved VAE (factor 4) and samples through ``tools/dist_test.sh`` on 2 CPU processes;
one SiT config trains and samples in one process; the latents config trains on latents written by
tools/generation/extract_latents.py. configs/dit_llama/metafile.yml lists every config.
"""
import functools
import glob
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets.class_labels import ClassLabelDataset
from ..conftest import REPO, free_port, run_tool

CONFIG_DIR = osp.join(REPO, 'configs', 'dit_llama')
NAME = re.compile(r'(dit|sit)_(llama|vit)-(s|b|l|xl)-p(2|4)_(\d+)xb(\d+)-(400k|2352k)'
                  r'_in1k-256px\.py')
CONFIGS = {osp.basename(p): p for p in sorted(glob.glob(osp.join(CONFIG_DIR, '*_in1k-256px.py')))}
LATENTS_CONFIG = osp.join(CONFIG_DIR, 'dit_llama-xl-p2_8xb32-400k_in1k-latents-256px.py')

# DiT-LLaMA Table 1, SiT-LLaMA Tables 8/9, and their baselines
EXPECTED = {
    *(f'dit_llama-{s}_8xb32-400k_in1k-256px.py' for s in ('b-p4', 'l-p4', 'xl-p4', 'xl-p2')),
    'dit_llama-xl-p2_8xb32-2352k_in1k-256px.py',
    *(f'dit_vit-{s}_8xb32-400k_in1k-256px.py' for s in ('b-p4', 'l-p4', 'xl-p4', 'xl-p2')),
    *(f'sit_{b}-{s}-p2_8xb32-400k_in1k-256px.py' for b in ('llama', 'vit')
      for s in ('s', 'b', 'l', 'xl')),
}

# trainable parameters of each config's model (= of its denoiser), measured on the meta device.
# DiT-LLaMA-B/4 and XL/2 are the official dit/models.py counts (without the unused pos_embed);
# the other LLaMA ones round to the counts of the official layouts; the baselines are the official
# DiT counts less the
# frozen sin-cos pos_embed (a buffer here), e.g. DiT-XL/2 675,129,632 - 256 x 1152.
PARAMS = {
    ('dit', 'llama', 'b', 4): 130_380_416, ('dit', 'llama', 'l', 4): 464_156_800,
    ('dit', 'llama', 'xl', 4): 674_839_424, ('dit', 'llama', 'xl', 2): 674_673_440,
    ('dit', 'vit', 'b', 4): 130_426_496, ('dit', 'vit', 'l', 4): 457_988_224,
    ('dit', 'vit', 'xl', 4): 675_000_704, ('dit', 'vit', 'xl', 2): 674_834_720,
    ('sit', 'llama', 's', 2): 32_842_016, ('sit', 'llama', 'b', 2): 130_269_728,
    ('sit', 'llama', 'l', 2): 464_009_248, ('sit', 'llama', 'xl', 2): 674_673_440,
    ('sit', 'vit', 's', 2): 32_865_056, ('sit', 'vit', 'b', 2): 130_315_808,
    ('sit', 'vit', 'l', 2): 457_840_672, ('sit', 'vit', 'xl', 2): 674_834_720,
}
SPEC_PARAMS_M = {  # the official layouts' parameter counts (0.1M)
    ('dit', 'b', 4): 130.4, ('dit', 'l', 4): 464.2, ('dit', 'xl', 4): 674.8,
    ('dit', 'xl', 2): 674.7, ('sit', 's', 2): 32.8, ('sit', 'b', 2): 130.3,
    ('sit', 'l', 2): 464.0, ('sit', 'xl', 2): 674.7}
SPEC_FID_DIT = {  # Table 1: no CFG, CFG 1.5 (400k steps)
    'llama-b-p4': (63.17, 39.51), 'llama-l-p4': (40.32, 18.64), 'llama-xl-p4': (35.99, 18.69),
    'vit-b-p4': (68.38, 45.38), 'vit-l-p4': (44.37, 22.51), 'vit-xl-p4': (43.01, 22.52)}
SPEC_FID_SIT = {  # Tables 8 / 9: SDE, ODE (the baselines: SDE only)
    'llama-s-p2': (53.90, 54.62), 'llama-b-p2': (29.53, 30.23), 'llama-l-p2': (14.32, 14.91),
    'llama-xl-p2': (12.20, 12.79), 'vit-s-p2': (58.15, ), 'vit-b-p2': (35.54, ),
    'vit-l-p2': (19.34, ), 'vit-xl-p2': (16.98, )}
WIDTH = dict(s=(384, 12), b=(768, 12), l=(1024, 24), xl=(1152, 28))  # embed_dims, depth
SWIGLU = dict(s=1024, b=2048, l=2816, xl=3072)  # round_up(8 D / 3, 256)


def _key(name):
    kind, block, size, patch, gpus, per_gpu, iters = NAME.fullmatch(name).groups()
    return kind, block, size, int(patch)


def _build(cfg):
    """cfg.model on the meta device; the VAE with random weights (its folder is not in CI)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    if cfg.model.get('vae'):
        cfg.model.vae.path = None
    with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
        return MODELS.build(cfg.model)


@functools.lru_cache(maxsize=None)
def _num_params(path):
    """(parameters of the config's model, of its denoiser), built on the meta device."""
    model = _build(Config.fromfile(path))
    return (sum(p.numel() for p in model.parameters()),
            sum(p.numel() for p in model.denoiser.parameters()))


# --------------------------------------------------------------------------- recipes
def test_the_papers_configs_exist():
    assert set(CONFIGS) == EXPECTED, sorted(set(CONFIGS) ^ EXPECTED)
    assert osp.isfile(LATENTS_CONFIG)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_recipe_fields(name):
    kind, block, size, patch = _key(name)
    gpus, per_gpu, iters = NAME.fullmatch(name).group(5, 6, 7)
    cfg = Config.fromfile(CONFIGS[name])
    model = cfg.model
    assert model.type == 'ClassConditionalDiffusion' and not model.get('latent_input', False)
    assert model.denoiser == dict(
        type='DiTLLaMA', arch=size, patch_size=patch, in_channels=4, input_size=32,
        num_classes=1000, class_dropout_prob=0.1, learn_sigma=True,
        block_type='llama' if block == 'llama' else 'dit')
    assert model.vae == dict(type='StableDiffusionVAE', path='data/pretrained/sd-vae-ft-ema',
                             scale=0.18215)
    assert model.guided_channels == 3  # the official samplers guide 3 of the 4 channels
    if kind == 'dit':
        assert model.objective == dict(type='GaussianDiffusion', num_timesteps=1000,
                                       beta_schedule='linear', beta_start=1e-4, beta_end=0.02,
                                       learn_sigma=True, sampling_steps=250, clip_denoised=False)
        assert model.cfg_scale == 1.5  # Table 1's CFG column
    else:
        assert model.objective == dict(
            type='FlowMatching', path='linear', prediction='velocity', train_eps=0.,
            sample_eps=0., sampler=dict(mode='sde', num_steps=250, diffusion_form='sigma',
                                        diffusion_norm=1.0, last_step='mean',
                                        last_step_size=0.04))
        assert model.cfg_scale == 1.0  # Tables 8/9 are without guidance
    # optimiser: AdamW 1e-4, no weight decay, constant (no scheduler); fp16 mixed precision as the
    # VisionLLaMA fork's train.py, fp32 for the baselines as the upstream DiT / SiT train.py
    if block == 'llama':
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.optim_wrapper.get('dtype', 'float16') == 'float16'
    else:
        assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                                               weight_decay=0.)
    assert 'clip_grad' not in cfg.optim_wrapper and 'paramwise_cfg' not in cfg.optim_wrapper
    assert cfg.param_scheduler == []
    # 8 GPUs x 32 = 256 images per step, which --auto-scale-lr keeps at lr 1e-4
    assert (int(gpus), int(per_gpu)) == (8, 32) and cfg.train_dataloader.batch_size == 32
    assert cfg.auto_scale_lr == dict(base_batch_size=256, enable=False)
    max_iters = dict(zip(('400k', '2352k'), (400_000, 2_352_000)))[iters]
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=max_iters,
                                 val_interval=max_iters)
    assert (iters == '2352k') == (name == 'dit_llama-xl-p2_8xb32-2352k_in1k-256px.py')
    ema = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert len(ema) == 1 and ema[0].momentum == 1e-4  # decay 0.9999
    # ImageNet: short side to 256 (bicubic), center crop, random flip
    train = cfg.train_dataloader
    assert train.sampler == dict(type='ReproducibleSampler',
                                 sampler=dict(type='InfiniteSampler', shuffle=True))
    assert train.dataset.type == 'ImageNet' and train.dataset.split == 'train'
    assert [t.type for t in train.dataset.pipeline] == [
        'LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'RandomFlip', 'PackInputs']
    assert train.dataset.pipeline[1].scale == train.dataset.pipeline[2].crop_size == 256
    # each rank seeded with 0 + rank, as the official global_seed * world_size + rank
    assert cfg.randomness == dict(seed=0, diff_rank_seed=True, deterministic=False)
    # FID-50K: uniform random labels (as sample_ddp.py) from seed 0, each index once over all ranks
    test = cfg.test_dataloader
    assert test.dataset == dict(type='ClassLabelDataset', num_samples=50000, num_classes=1000,
                                labels='uniform', seed=0)
    assert test.sampler == dict(type='DefaultSampler', shuffle=False, round_up=False)
    assert cfg.test_evaluator.type == 'GenerationMetric'
    assert cfg.test_evaluator.out_dir is None  # tools/test.py: {work_dir}/samples
    assert cfg.test_evaluator.get('prc_features', 'inception') == 'inception'  # as ADM's
    assert cfg.val_dataloader is None and cfg.val_cfg is None


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_builds_with_the_denoisers_exact_parameter_count(name):
    kind, block, size, patch = _key(name)
    n, n_denoiser = _num_params(CONFIGS[name])
    assert n == n_denoiser  # the frozen VAE is not counted
    assert n == PARAMS[(kind, block, size, patch)]
    D, depth = WIDTH[size]
    if block == 'llama':
        assert round(n / 1e6, 1) == SPEC_PARAMS_M[(kind, size, patch)]
    else:  # DiT's block: a 4D GELU MLP with biases instead of the bias-free SwiGLU
        llama = PARAMS[(kind, 'llama', size, patch)]
        assert n == llama - depth * 3 * D * SWIGLU[size] + depth * (8 * D * D + 5 * D)


def test_objectives_build_with_the_papers_schedules():
    from mmpretrain.registry import MODELS
    ddpm = MODELS.build(Config.fromfile(CONFIGS[sorted(EXPECTED)[0]]).model.objective)
    assert ddpm.num_timesteps == 1000 and ddpm.learn_sigma
    assert ddpm.betas[0].item() == pytest.approx(1e-4) and ddpm.betas[-1].item() == \
        pytest.approx(0.02)
    flow = MODELS.build(Config.fromfile(
        CONFIGS['sit_llama-xl-p2_8xb32-400k_in1k-256px.py']).model.objective)
    assert flow.sampler['mode'] == 'sde' and flow.sampler['num_steps'] == 250


# --------------------------------------------------------------------------- tiny real runs
TINY_VAE = dict(block_out_channels=(16, 16, 16), down_block_types=('DownEncoderBlock2D', ) * 3,
                up_block_types=('UpDecoderBlock2D', ) * 3, norm_num_groups=8, layers_per_block=1,
                latent_channels=4, sample_size=32)  # downsampling factor 4: 32 px -> 8 x 8
IMAGE, LATENT, CLASSES, NUM_IMAGES = 32, 8, 4, 8


def save_tiny_vae(path):
    """A tiny random diffusers AutoencoderKL folder (config.json + weights), as the SD VAE's."""
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    vae = AutoencoderKL(**TINY_VAE)
    with torch.no_grad():
        vae.quant_conv.bias[4:] = -1.5  # posterior variances well inside float16
    vae.save_pretrained(str(path))
    return str(path)


def write_imagenet_folder(root):
    """NUM_IMAGES RGB images of 40x48 in ImageNet's layout (train/<wnid>/..., meta/train.txt)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(NUM_IMAGES):
        label = i % CLASSES
        rel = f'n{label:08d}/img_{i}.JPEG'
        path = osp.join(root, 'train', rel)
        os.makedirs(osp.dirname(path), exist_ok=True)
        pixels = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)  # smooth colour blobs
        Image.fromarray(pixels).resize((48, 40), Image.BICUBIC).save(path, format='PNG')
        lines.append(f'{rel} {label}')
    os.makedirs(osp.join(root, 'meta'))
    with open(osp.join(root, 'meta', 'train.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return str(root)


def tiny_options(vae, iters=2, samples=10, batch=2, absent=None):
    """--cfg-options making an ImageNet config tiny: a 2-block 32-wide denoiser on 8x8 latents of
    the tiny VAE, 4 classes, fp32 (CPU), `iters` iterations, `samples` test samples."""
    opts = ['model.denoiser.arch._delete_=True', 'model.denoiser.arch.embed_dims=32',
            'model.denoiser.arch.num_layers=2', 'model.denoiser.arch.num_heads=2',
            f'model.denoiser.input_size={LATENT}', f'model.denoiser.num_classes={CLASSES}',
            f'model.vae.path={vae}', 'optim_wrapper.type=OptimWrapper',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            f'test_dataloader.batch_size={batch}', 'test_dataloader.num_workers=0',
            f'test_dataloader.dataset.num_samples={samples}',
            f'test_dataloader.dataset.num_classes={CLASSES}']
    if absent:
        opts.append(f'test_evaluator.inception_weights={absent}')
    return opts


def image_options(data_root):
    return [f'train_dataloader.dataset.data_root={data_root}',
            f'train_dataloader.dataset.pipeline.1.scale={IMAGE}',
            f'train_dataloader.dataset.pipeline.2.crop_size={IMAGE}']


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp('dit_configs')
    return dict(vae=save_tiny_vae(root / 'vae'),
                data=write_imagenet_folder(root / 'imagenet'),
                absent=str(root / 'absent' / 'weights-inception-2015-12-05-6726825d.pth'))


def _losses(out):
    return [float(v) for v in re.findall(r'Iter\(train\) \[\s*\d+/\d+\].*?\sloss: ([\d.e+-]+)',
                                         out)]


def _check_samples(work_dir, n):
    """n PNGs named by index, the ADM .npz holding them in index order with the configs' uniform
    random labels (ClassLabelDataset with seed 0: the same whatever the number of processes), and
    no two samples alike."""
    images = sorted(glob.glob(osp.join(work_dir, 'samples', 'images', '*.png')))
    assert [osp.basename(p) for p in images] == [f'{i:06d}.png' for i in range(n)]
    with np.load(osp.join(work_dir, 'samples', f'samples_{n}x{IMAGE}x{IMAGE}x3.npz')) as f:
        arr, labels = f['arr_0'], f['arr_1']
    assert arr.shape == (n, IMAGE, IMAGE, 3) and arr.dtype == np.uint8
    expected = ClassLabelDataset(num_samples=n, num_classes=CLASSES, labels='uniform', seed=0)
    assert labels.tolist() == [expected.get_label(i) for i in range(n)]
    assert labels.tolist() != [i % CLASSES for i in range(n)]  # not the balanced labels
    for i, p in enumerate(images):
        assert np.array_equal(arr[i], np.asarray(Image.open(p).convert('RGB')))
    flat = arr.reshape(n, -1).astype(np.int16)
    assert all(np.abs(flat[i] - flat[j]).max() > 0 for i in range(n) for j in range(i))
    return arr


def test_dit_config_trains_and_samples_on_two_processes(tiny, python, tmp_path):
    """DiT-LLaMA-XL/2's config made tiny: 2 iterations through tools/train.py (the VAE encodes
    on the fly), then tools/dist_test.sh on 2 CPU processes draws 10 samples (5 per rank, in
    batches of 2, 2, 1) with guidance 1.5 and writes them all once."""
    config = CONFIGS['dit_llama-xl-p2_8xb32-400k_in1k-256px.py']
    opts = tiny_options(tiny['vae'], absent=tiny['absent']) + image_options(tiny['data']) + \
        ['model.objective.sampling_steps=4']
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path),
                    '--cfg-options', *opts])
    losses = _losses(out)
    assert len(losses) == 2 and all(np.isfinite(losses)) and min(losses) > 0, out[-3000:]
    assert re.findall(r'Iter\(train\) \[\s*\d/2\]\s+lr: ([\d.e+-]+)', out) == ['1.0000e-04'] * 2
    assert re.search(r'Iter\(train\) \[1/2\].*\smse: [\d.]+\s+vb: [\d.]+', out)  # DDPM hybrid
    ckpt = torch.load(tmp_path / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert not any('vae' in k for k in ckpt['state_dict'])  # the frozen VAE stays out
    assert 'ema_state_dict' in ckpt
    out = run_tool(['bash', 'tools/dist_test.sh', config, str(tmp_path / 'iter_2.pth'), '2',
                    '--work-dir', str(tmp_path), '--cfg-options', *opts],
                   env=dict(PORT=str(free_port())))
    assert re.search(r'gen/num_samples: 10\b', out), out[-3000:]
    assert 'Start testing on EMA model' in out
    # rank 0 samples indices 0, 2, .., 8: batches of 2, 2 and 1
    assert re.search(r'Iter\(test\) \[3/3\]', out) and not re.search(r'\[\d/4\]', out)
    # FID / IS / P-R need the Inception weights: said clearly, not downloaded, samples kept
    assert (f'weights-inception-2015-12-05-6726825d.pth is missing ({tiny["absent"]} is not a '
            'file)') in out
    assert "'gen/fid'" not in out and "'gen/is_mean'" not in out
    _check_samples(tmp_path, 10)


def test_sit_config_trains_and_samples(tiny, python, tmp_path):
    """The SiT-S/2 baseline config (DiT block, flow matching, SDE sampler) in one process."""
    config = CONFIGS['sit_vit-s-p2_8xb32-400k_in1k-256px.py']
    opts = tiny_options(tiny['vae'], samples=6, batch=4, absent=tiny['absent']) + \
        image_options(tiny['data']) + ['model.objective.sampler.num_steps=4']
    out = run_tool([python, 'tools/train.py', config, '--work-dir', str(tmp_path),
                    '--cfg-options', *opts])
    assert len(_losses(out)) == 2 and all(np.isfinite(_losses(out))), out[-3000:]
    out = run_tool([python, 'tools/test.py', config, str(tmp_path / 'iter_2.pth'),
                    '--work-dir', str(tmp_path), '--cfg-options', *opts])
    assert re.search(r'gen/num_samples: 6\b', out), out[-3000:]
    _check_samples(tmp_path, 6)


def test_latents_config_trains_on_extracted_latents(tiny, python, tmp_path):
    """extract_latents.py encodes the folder with the XL/2 image config (and --hflip); the latents
    config trains 2 iterations on it through LatentDataset."""
    image_config = CONFIGS['dit_llama-xl-p2_8xb32-400k_in1k-256px.py']
    latents = tmp_path / 'latents'
    out = run_tool([python, 'tools/generation/extract_latents.py', image_config, str(latents),
                    '--hflip', '--num-workers', '0', '--batch-size', '4', '--device', 'cpu',
                    '--vae', tiny['vae'], '--cfg-options', *image_options(tiny['data'])])
    assert f'wrote {NUM_IMAGES} latents (2 view(s))' in out, out[-3000:]
    arr = np.load(latents / 'latents.npy')
    assert arr.shape == (2, NUM_IMAGES, 8, LATENT, LATENT) and arr.dtype == np.float16
    opts = tiny_options(tiny['vae']) + [f'train_dataloader.dataset.data_root={latents}']
    cfg = Config.fromfile(LATENTS_CONFIG)
    assert cfg.model.latent_input is True
    assert cfg.train_dataloader.dataset.type == 'LatentDataset'
    out = run_tool([python, 'tools/train.py', LATENTS_CONFIG, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', *opts])
    losses = _losses(out)
    assert len(losses) == 2 and all(np.isfinite(losses)) and min(losses) > 0, out[-3000:]
    assert osp.isfile(tmp_path / 'w' / 'iter_2.pth')


def test_latents_config_is_the_xl2_recipe():
    """The latents config differs from the XL/2 image config only in what the data are."""
    base = Config.fromfile(CONFIGS['dit_llama-xl-p2_8xb32-400k_in1k-256px.py'])
    cfg = Config.fromfile(LATENTS_CONFIG)
    assert cfg.model.pop('latent_input') is True
    assert cfg.model == base.model
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'custom_hooks',
                'test_dataloader', 'test_evaluator', 'auto_scale_lr'):
        assert cfg[key] == base[key], key
    train = cfg.train_dataloader
    assert train.batch_size == 32 and train.sampler == base.train_dataloader.sampler
    assert train.dataset == dict(type='LatentDataset',
                                 data_root='data/imagenet/sd-vae-ft-ema-latents-256px', flip=True)
    header = open(LATENTS_CONFIG).read()
    assert 'tools/generation/extract_latents.py' in header and '--hflip' in header


# --------------------------------------------------------------------------- metafile
def test_metafile_lists_every_config():
    """configs/dit_llama/metafile.yml: one entry per shipped config, with its exact parameter
    count (the model built on the meta device) and the paper's FIDs for the ImageNet ones."""
    import yaml
    with open(osp.join(CONFIG_DIR, 'metafile.yml')) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    shipped = {osp.splitext(osp.basename(p))[0]: p
               for p in glob.glob(osp.join(CONFIG_DIR, '*.py'))}
    assert set(shipped) == set(models)
    for name, path in shipped.items():
        entry = models[name]
        assert entry['Config'] == osp.relpath(path, REPO)
        assert entry['Metadata']['Parameters'] == _num_params(path)[0], name
        if name + '.py' in EXPECTED:
            assert entry['Metadata']['Parameters'] == PARAMS[_key(name + '.py')]
    # the papers' FIDs (VisionLLaMA Tables 1, 8, 9; DiT: no CFG / CFG 1.5; SiT: SDE / ODE)
    # the digits toys carry what tests/tools/test_{dit,sit}_learning.py measured
    results = {n: m['Results'][0]['Metrics'] for n, m in models.items()
               if m['Results'] and '_digits-' not in n}
    for n, m in models.items():
        if m['Results']:
            assert m['Results'][0]['Task'] == 'Class-conditional Image Generation'
            assert m['Results'][0]['Dataset'] == ('scikit-learn digits (held-out split)' if
                                                  '_digits-' in n else 'ImageNet-1k (256x256)')
    expected = {f'dit_{k}_8xb32-400k_in1k-256px': dict(zip(('FID', 'FID (CFG 1.5)'), v))
                for k, v in SPEC_FID_DIT.items()}
    expected['dit_llama-xl-p2_8xb32-2352k_in1k-256px'] = {
        'FID': 9.84, 'FID (CFG 1.5)': 2.42, 'sFID (CFG 1.5)': 4.51, 'IS (CFG 1.5)': 265.39,
        'Precision (CFG 1.5)': 0.83, 'Recall (CFG 1.5)': 0.57}
    expected.update({f'sit_{k}_8xb32-400k_in1k-256px': dict(zip(('FID (SDE)', 'FID (ODE)'), v))
                     for k, v in SPEC_FID_SIT.items()})
    assert results == expected
