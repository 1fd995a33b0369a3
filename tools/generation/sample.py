"""Draw a grid of class-conditional samples from a DiT / DiT-LLaMA / SiT / SiT-LLaMA checkpoint.

    python tools/generation/sample.py CONFIG CHECKPOINT --classes 207 360 387 974 88 979 417 279 \
        [--per-class 1] [--cfg-scale 4.0] [--steps 250] [--seed 0] [--nrow 8] [--out grid.png]
        [--device cpu|cuda] [--cfg-options k=v ...]

CHECKPOINT is a ``tools/train.py`` checkpoint of the config (its ``state_dict`` holds the EMA
weights when the config trains with the EMA hook) or a released DiT-LLaMA checkpoint converted by
``tools/model_converters/dit_llama_official.py``. Every key is checked against the config's model.
``--steps`` overrides the sampler's step count (DDPM respacing or the SDE / fixed-step ODE grid).
Each row of the grid is one class (``--per-class`` samples), in the order given.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

from visionllama_mm.cli import (checkpoint_file, config_file, device, float_range,
                                image_output_file, int_range, positive_int, seed)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Sample a class-conditional image grid')
    p.add_argument('config', type=config_file)
    p.add_argument('checkpoint', type=checkpoint_file)
    p.add_argument('--classes', type=int_range(), nargs='+', required=True,
                   help='class ids, one per row')
    p.add_argument('--per-class', type=positive_int, default=1, help='samples per class')
    p.add_argument('--cfg-scale', type=float_range(1), default=None,
                   help="guidance scale >= 1 (1: no guidance; default: the config's "
                   'model.cfg_scale)')
    p.add_argument('--steps', type=int_range(2), default=None,
                   help='sampling steps, >= 2 (DDPM: at most num_timesteps; default: the config)')
    p.add_argument('--seed', type=seed, default=0)
    p.add_argument('--nrow', type=positive_int, default=None,
                   help='images per grid row (default per-class)')
    p.add_argument('--out', type=image_output_file, default='grid.png',
                   help='the grid image (.png, .jpg, ...; missing folders are created)')
    p.add_argument('--device', type=device, default=None,
                   help='default: cuda if available, else cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config entries, key=value')
    return p.parse_args(argv)


def load_model(cfg, checkpoint: str, device: str):
    """Build ``cfg.model`` (a ``ClassConditionalDiffusion``) and load every key of CHECKPOINT."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from visionllama_mm.engine.pretrained import load_checkpoint_source
    from visionllama_mm.models.lvm.convert import check_keys

    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    # a local path or an http(s) URL (downloaded into torch's hub cache; one-line error offline)
    try:
        ckpt = load_checkpoint_source(checkpoint, map_location='cpu', what='CHECKPOINT')
    except (OSError, RuntimeError, ValueError) as err:  # unreadable, offline URL, not a checkpoint
        raise SystemExit(f'sample.py: {err}') from None
    sd = ckpt.get('state_dict', ckpt)
    try:
        check_keys(sd, {k: v.shape for k, v in model.state_dict().items()},
                   f"{checkpoint}: does not match the config's model")
    except ValueError as e:
        raise SystemExit(str(e)) from None
    model.load_state_dict(sd)
    return model.to(device).eval()


def main():
    args = parse_args()
    import torch
    from mmengine.config import Config
    from torchvision.utils import save_image

    import visionllama_mm  # noqa: F401
    from visionllama_mm.engine.checks import check_cfg_options

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('model', {}).get('type') != 'ClassConditionalDiffusion':
        raise SystemExit(f'{args.config}: sample.py needs a ClassConditionalDiffusion config, '
                         f'got model.type={cfg.get("model", {}).get("type")!r}.')
    if args.cfg_scale is not None:
        cfg.model.cfg_scale = args.cfg_scale
    if args.steps is not None:
        obj = cfg.model.objective
        if obj.type == 'GaussianDiffusion':
            num_timesteps = obj.get('num_timesteps', 1000)
            if args.steps > num_timesteps:
                raise SystemExit(f'--steps {args.steps}: DDPM sampling respaces the '
                                 f'{num_timesteps} training timesteps (the config\'s '
                                 f'model.objective.num_timesteps), so it takes 2..{num_timesteps} '
                                 'steps.')
            obj.sampling_steps = args.steps
        else:  # FlowMatching: the SDE / ODE sampler's grid (its default sampler is the SDE)
            if obj.get('sampler') is None:
                obj.sampler = dict(mode='sde')
            obj.sampler['num_steps'] = args.steps
    num_classes = cfg.model.denoiser.get('num_classes', 1000)
    bad = [c for c in args.classes if not 0 <= c < num_classes]
    if bad:
        raise SystemExit(f'--classes {bad}: class ids must lie in [0, {num_classes}).')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = load_model(cfg, args.checkpoint, device)
    labels = torch.tensor(args.classes, device=device).repeat_interleave(args.per_class)
    images = model.generate(labels, seed=args.seed)
    images = (images.float().clamp(-1, 1) + 1) / 2
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    save_image(images.cpu(), args.out, nrow=args.nrow or args.per_class, padding=2)
    print(f'{len(labels)} samples of classes {args.classes} (cfg scale {model.cfg_scale}) '
          f'-> {args.out}')


if __name__ == '__main__':
    main()
