"""The shipped configs the GPU check trains, one per model family, and how each is shrunk.

Each :class:`Family` names a real config file and changes only sizes (widths, depths, image and
sequence lengths; attention head widths are kept at the shipped models' own ``head_dim``, since
the fused SDPA kernels choose by it), data (the tiny folders of ``_data.py``) and, in
``train_checks.py``, the schedule (3 iterations at the base learning rate). Stochastic depth is
off so that compiled and eager runs compute the same function; the random draws inside a forward
(MAE / FCMAE masks, diffusion timesteps and noise, label dropout) are seeded per iteration by the
Runner's ``ReproducibleRandomnessHook`` and drawn by eager's generator in compiled runs
(inductor's ``fallback_random``).
"""
import glob
import importlib
import os.path as osp
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config, ConfigDict

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# an AutoencoderKL of one level: DiT/SiT on pre-extracted latents use the VAE only for its scale
# (sampling latents from the stored moments), so its weights are never run in training
TINY_VAE = dict(in_channels=3, out_channels=3, down_block_types=['DownEncoderBlock2D'],
                up_block_types=['UpDecoderBlock2D'], block_out_channels=[8], layers_per_block=1,
                act_fn='silu', latent_channels=4, norm_num_groups=8, sample_size=32)

CROP_TYPES = ('RandomResizedCrop', 'ResizeEdge', 'CenterCrop', 'RandomCrop', 'Resize')


def shrink_pipeline(pipeline: Sequence[dict], size: int) -> None:
    """Crops and resizes of an image pipeline produce ``size`` x ``size`` images."""
    for t in pipeline:
        if isinstance(t, dict) and t.get('type') in CROP_TYPES:
            for key in ('scale', 'crop_size'):
                if key in t:
                    t[key] = size


def loader(cfg: Config, batch: int, **dataset) -> ConfigDict:
    """The training loader: ``batch`` samples, no workers, ``dataset`` keys updated."""
    dl = cfg.train_dataloader
    dl.update(batch_size=batch, num_workers=0, persistent_workers=False, pin_memory=False)
    dl.dataset.update(dataset)
    return dl


def image_folder(cfg: Config, batch: int, root: str, size: int) -> None:
    """The training loader reads the ImageNet-layout folder ``root``, crops ``size`` px. Without
    workers nothing is shared between processes, so the sample list is not serialised (mmengine
    runs a full ``gc.collect()`` to do so)."""
    dl = loader(cfg, batch, data_root=root, serialize_data=False)
    shrink_pipeline(dl.dataset.pipeline, size)


@dataclass
class Family:
    """A model family's check: ``config`` shrunk by ``shrink(cfg, data, batch)``.

    ``data``: the key of the folder ``shrink`` reads (see ``train_checks.write_data``).
    ``needs``: modules the family imports beyond the OpenMMLab stack (a missing one skips it).
    ``head_dims()``: every attention head width of the family's shipped configs;
    ``set_head_dim(cfg, d)``: the shrunk config with attention heads of width ``d``.
    ``decode``: also decode with a KV cache in the fused-attention check (LLaMA decoder).
    """
    name: str
    config: str
    data: str
    shrink: Callable[[Config, Dict[str, str], int], None]
    needs: Sequence[str] = ()
    head_dims: Callable[[], List[int]] = field(default=lambda: [])
    set_head_dim: Optional[Callable[[Config, int], None]] = None
    decode: bool = False
    note: str = ''


def _zoo_head_dims(module: str, name: str) -> List[int]:
    """The head widths (embed_dims / num_heads) of every variant in the ``arch_zoo`` of class
    ``name`` of ``module`` (imported only when a head-width sweep asks for it)."""
    cls = getattr(importlib.import_module(module), name)
    return sorted({a['embed_dims'] // a['num_heads'] for a in cls.arch_zoo.values()})


# ---------------------------------------------------------------- VisionLLaMA
def _plain_arch(d=64, heads=2, layers=2):
    return dict(embed_dims=heads * d, num_layers=layers, num_heads=heads,
                feedforward_channels=4 * heads * d)


def _plain(cfg, data, batch):
    cfg.model.backbone.update(arch=_plain_arch(), img_size=64, drop_path_rate=0.)
    cfg.model.head.in_channels = 128
    image_folder(cfg, batch, data['imagenet'], 64)


def _plain_dims():
    return _zoo_head_dims('visionllama_mm.models.backbones.vision_llama', 'VisionLLaMA')


def _plain_set(cfg, d):
    cfg.model.backbone.arch = _plain_arch(d)
    cfg.model.head.in_channels = 2 * d


def _pyramid_arch(d=32):
    # two blocks in the first stage: its second is a GSA block (keys from the 8x sub-sampled
    # grid); the other stages keep their LSA (windowed) block
    return dict(embed_dims=[d, 2 * d, 2 * d, 2 * d], depths=[2, 1, 1, 1], num_heads=[1, 2, 2, 2],
                feedforward_channels=[2 * d, 4 * d, 4 * d, 4 * d])


def _pyramid(cfg, data, batch):
    cfg.model.backbone.update(arch=_pyramid_arch(), img_size=64, drop_path_rate=0.)
    cfg.model.head.in_channels = 64
    image_folder(cfg, batch, data['imagenet'], 64)


def _pyramid_dims():
    from visionllama_mm.models.backbones.pyramid_vision_llama import PyramidVisionLLaMA
    return sorted({c // h for a in PyramidVisionLLaMA.arch_zoo.values()
                   for c, h in zip(a['embed_dims'], a['num_heads'])})


def _pyramid_set(cfg, d):
    cfg.model.backbone.arch = _pyramid_arch(d)
    cfg.model.head.in_channels = 2 * d


def _mae(cfg, data, batch):
    # encoder head_dim 64 (ViT-B/L), decoder 512 / 16 = 32 as mmpretrain's MAE decoder
    cfg.model.backbone.update(arch=_plain_arch(), img_size=64)
    cfg.model.neck.update(embed_dim=128, num_patches=16, decoder_embed_dim=64, decoder_depth=1,
                          decoder_num_heads=2)
    image_folder(cfg, batch, data['imagenet'], 64)


def _mae_set(cfg, d):
    cfg.model.backbone.arch = _plain_arch(d)
    cfg.model.neck.embed_dim = 2 * d


# ---------------------------------------------------------------- ConvNeXt V2
TINY_CONVNEXTV2 = dict(depths=[1, 1, 1, 1], channels=[16, 32, 48, 64])


def _convnextv2(cfg, data, batch):
    cfg.model.backbone.update(arch=dict(TINY_CONVNEXTV2), drop_path_rate=0., init_cfg=None)
    cfg.model.head.in_channels = 64
    image_folder(cfg, batch, data['imagenet'], 64)


def _fcmae(cfg, data, batch):
    # 64 px: 2 x 2 cells of 32 px, 60% masked (the sparse encoder sees one or two)
    cfg.model.backbone.update(arch=dict(TINY_CONVNEXTV2), drop_path_rate=0.)
    cfg.model.neck.update(in_channels=64, embed_dims=32)
    image_folder(cfg, batch, data['imagenet'], 64)


# ---------------------------------------------------------------- ViTamin
def _vitamin_arch(d=64):
    return dict(stem_channels=16, channels=[16, 32], depths=[1, 1], embed_dims=2 * d,
                num_layers=2, num_heads=2)


def _vitamin(cfg, data, batch):
    cfg.model.backbone.update(arch=_vitamin_arch(), img_size=64, drop_path_rate=0.,
                              init_cfg=None)
    cfg.model.head.in_channels = 128
    image_folder(cfg, batch, data['imagenet'], 64)


def _vitamin_dims():
    return _zoo_head_dims('visionllama_mm.models.backbones.vitamin', 'ViTamin')


def _vitamin_set(cfg, d):
    cfg.model.backbone.arch = _vitamin_arch(d)
    cfg.model.head.in_channels = 2 * d


def _clip(cfg, data, batch):
    cfg.model.vision_backbone.update(arch=_vitamin_arch(), img_size=64, drop_path_rate=0.)
    cfg.model.text_encoder.update(embed_dims=128, proj_dims=32, num_layers=1, num_heads=2)
    dl = loader(cfg, batch, data_root=data['shards'], shards='train-{00000..00001}.tar',
                num_samples=16)
    shrink_pipeline(dl.dataset.pipeline, 64)


def _clip_dims():
    """Image tower (ViTamin) and text tower head widths of the CLIP training configs."""
    dims = set(_vitamin_dims())
    for path in glob.glob(osp.join(REPO, 'configs/vitamin/clip*datacomp1b.py')):
        text = Config.fromfile(path).model.text_encoder
        dims.add(text.embed_dims // text.num_heads)
    return sorted(dims)


def _clip_set(cfg, d):
    cfg.model.vision_backbone.arch = _vitamin_arch(d)
    cfg.model.text_encoder.embed_dims = 2 * d


# ---------------------------------------------------------------- LVM / VQGAN
def _llama_arch(d=64):
    return dict(embed_dims=2 * d, feedforward_channels=4 * d, num_layers=2, num_heads=2)


def _lvm(cfg, data, batch):
    cfg.model.backbone.arch = _llama_arch()
    loader(cfg, batch, data_root=data['tokens'], context_length=64)


def _lvm_dims():
    return _zoo_head_dims('visionllama_mm.models.backbones.llama', 'LLaMADecoder')


def _lvm_set(cfg, d):
    cfg.model.backbone.arch = _llama_arch(d)


def _vqgan(cfg, data, batch):
    # the config's own tiny arch (32 px); the photo tiles replaced by a 32 px ImageNet folder
    dl = loader(cfg, batch)
    dl.dataset = ConfigDict(type='CustomDataset', data_root=data['tiles32'],
                            ann_file='meta/train.txt', data_prefix='train',
                            serialize_data=False, pipeline=dl.dataset.pipeline)


# ---------------------------------------------------------------- DiT / SiT-LLaMA
def _dit_arch(d=72):
    return dict(embed_dims=2 * d, num_layers=2, num_heads=2)


def _diffusion(cfg, data, batch, d):
    cfg.model.denoiser.update(arch=_dit_arch(d), input_size=8)
    cfg.model.vae.update(path=None, config=dict(TINY_VAE))
    cfg.model.latent_input = True
    dl = loader(cfg, batch)
    dl.dataset = ConfigDict(type='LatentDataset', data_root=data['latents'], flip=True)


def _dit_dims():
    return _zoo_head_dims('visionllama_mm.models.diffusion.dit_llama', 'DiTLLaMA')


def _dit_set(cfg, d):
    cfg.model.denoiser.arch = _dit_arch(d)


FAMILIES: List[Family] = [
    Family('visionllama_plain',
           'configs/visionllama/visionllama-plain-small-p16_8xb256-800e_in1k.py',
           'imagenet', _plain, head_dims=_plain_dims, set_head_dim=_plain_set),
    Family('visionllama_pyramid',
           'configs/visionllama/visionllama-pyramid-small_8xb128-300e_in1k.py',
           'imagenet', _pyramid, head_dims=_pyramid_dims, set_head_dim=_pyramid_set,
           note='LSA windows and GSA sub-sampled keys'),
    Family('visionllama_mae',
           'configs/visionllama/mae_visionllama-base-p16_8xb512-amp-coslr-800e_in1k.py',
           'imagenet', _mae, head_dims=_plain_dims, set_head_dim=_mae_set,
           note='encoder on the visible tokens, mmpretrain decoder'),
    Family('convnextv2',
           'configs/convnextv2/convnextv2-atto_fcmae-pre_32xb32-amp-coslr-600e_in1k.py',
           'imagenet', _convnextv2, note='no attention'),
    Family('convnextv2_fcmae',
           'configs/convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py',
           'imagenet', _fcmae, note='sparse encoder; no attention'),
    Family('vitamin', 'configs/vitamin/vitamin-small_clip-pre_8xb256-amp-coslr-50e_in1k.py',
           'imagenet', _vitamin, head_dims=_vitamin_dims, set_head_dim=_vitamin_set),
    Family('vitamin_clip',
           'configs/vitamin/clip_vitamin-small_32xb256-amp-coslr-1.28b_datacomp1b.py',
           'shards', _clip, needs=('open_clip', ), head_dims=_clip_dims, set_head_dim=_clip_set,
           note='image and text towers (causal text attention), activation checkpointing'),
    Family('lvm', 'configs/lvm/lvm_llama-100m_8xb4-accum4-400kit_uvd.py', 'tokens', _lvm,
           head_dims=_lvm_dims, set_head_dim=_lvm_set, decode=True,
           note='causal decoder; KV-cache decoding in the attention check'),
    Family('vqgan', 'configs/lvm/vqgan/vqgan_tiny-f4_1xb8-1500it_sample-photos.py', 'tiles32',
           _vqgan, note='no attention at the shipped archs'),
    Family('dit_llama', 'configs/dit_llama/dit_llama-xl-p2_8xb32-400k_in1k-latents-256px.py',
           'latents', lambda cfg, data, batch: _diffusion(cfg, data, batch, 72),
           needs=('diffusers', ), head_dims=_dit_dims, set_head_dim=_dit_set,
           note='DDPM, learned sigma'),
    Family('sit_llama', 'configs/dit_llama/sit_llama-s-p2_8xb32-400k_in1k-256px.py', 'latents',
           lambda cfg, data, batch: _diffusion(cfg, data, batch, 64), needs=('diffusers', ),
           note='flow matching; trained on latents (model.latent_input=True)'),
]
FAMILY_NAMES = [f.name for f in FAMILIES]
