"""Prompt an LVM with images and write the images it generates as PNG.

    python tools/lvm/generate.py CONFIG CHECKPOINT --prompt a.png b.png c.png --out-dir out/
        [--num-new 1] [--candidates 2] [--temperature 1.0] [--top-k 50] [--top-p 1.0]
        [--context-images 16] [--allow-special] [--layout sequence|analogy]
        [--tokenizer-checkpoint VQGAN.pth] [--seed 0] [--device cpu|cuda] [--cfg-options k=v]

The prompt is a visual sentence: a run of frames (``--layout sequence``: the next frame(s) are
generated) or analogy pairs ``x1 y1 x2 y2 ... x_query`` (``--layout analogy``: ``y_query`` is
generated). Each prompt image is resized to the tokenizer's resolution (no crop), tokenized on its
own and concatenated without BOS, as the official inference does; at most ``context_images - 1``
images are kept as context. Sampling uses the KV cache and always emits exactly ``tokens_per_image``
tokens per new image, VQ codes only unless ``--allow-special`` (the released generation config's EOS
id, 2, is a VQ code). Defaults are the official ones: temperature 1, top-k 50, top-p 1.

Written to ``--out-dir``: ``candidate{c}_new{k}.png`` for every candidate ``c`` and new image ``k``,
and ``strip.png``: the prompt images in a row (analogy: x over y) with each candidate's new
images after them, outlined in red.

CHECKPOINT is a ``tools/train.py`` checkpoint of the config or a converted release
(``tools/model_converters/lvm_official.py``); the tokenizer's weights come from CHECKPOINT when it
has them, else from ``--tokenizer-checkpoint`` (a converted MUSE VQGAN) or the config's
``model.tokenizer.init_cfg``. Files are read with ``weights_only=True``.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction


def parse_args():
    p = argparse.ArgumentParser(description='Generate the next image(s) of a visual prompt')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--prompt', nargs='+', required=True, help='prompt image files, in order')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--num-new', type=int, default=1, help='images to generate per candidate')
    p.add_argument('--candidates', type=int, default=1, help='independent samples')
    p.add_argument('--temperature', type=float, default=1.0, help='0: greedy')
    p.add_argument('--top-k', type=int, default=50, help='0: no top-k')
    p.add_argument('--top-p', type=float, default=1.0)
    p.add_argument('--context-images', type=int, default=16)
    p.add_argument('--allow-special', action='store_true',
                   help='let the sampler emit ids >= the codebook size (default: codes only)')
    p.add_argument('--layout', choices=['sequence', 'analogy'], default='sequence')
    p.add_argument('--tokenizer-checkpoint', help='tokenizer weights when CHECKPOINT has none')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--device', default=None)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config settings, key=value (as tools/test.py)')
    return p.parse_args()


def load_model(cfg, checkpoint: str, tokenizer_checkpoint=None, device='cpu'):
    """Build ``cfg.model`` (an LVM with a tokenizer) and load its weights, reporting every key
    that does not match."""
    import torch
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from visionllama_mm.compat import load_checkpoint_file
    from visionllama_mm.models.lvm.convert import check_keys

    init_default_scope('mmpretrain')
    if cfg.model.get('type') != 'LVM' or not cfg.model.get('tokenizer'):
        raise SystemExit(f'{cfg.filename}: generate.py needs an LVM config with a tokenizer '
                         '(model.tokenizer).')
    model = MODELS.build(cfg.model)
    model.init_weights()  # the tokenizer's init_cfg, if any
    ckpt = load_checkpoint_file(checkpoint, map_location='cpu')
    sd = ckpt.get('state_dict', ckpt)
    own = model.state_dict()
    tok_keys = {k for k in own if k.startswith('tokenizer.')}
    if tokenizer_checkpoint:
        tok = load_checkpoint_file(tokenizer_checkpoint, map_location='cpu')
        sd = {**{f'tokenizer.{k}': v for k, v in tok.get('state_dict', tok).items()},
              **{k: v for k, v in sd.items() if not k.startswith('tokenizer.')}}
    # without tokenizer weights here, the tokenizer may come from model.tokenizer.init_cfg
    with_tokenizer = bool(tokenizer_checkpoint) or bool(tok_keys & set(sd))
    expected = {k: v.shape for k, v in own.items() if with_tokenizer or k not in tok_keys}
    try:
        check_keys(sd, expected, f"{checkpoint}: does not match the config's model")
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not tok_keys & set(sd) and not cfg.model.tokenizer.get('init_cfg'):
        print('warning: no tokenizer weights in CHECKPOINT, no --tokenizer-checkpoint and no '
              'model.tokenizer.init_cfg: the tokenizer is randomly initialised')
    model.load_state_dict(sd, strict=False)
    return model.to(device).eval()


def read_images(paths, size):
    """Files -> (1, N, 3, H, W) float in [0, 1], resized to ``size`` with PIL's default filter."""
    import numpy as np
    import torch
    from PIL import Image
    imgs = []
    for p in paths:
        if not osp.isfile(p):
            raise SystemExit(f'--prompt: no such image file {p}')
        im = Image.open(p).convert('RGB').resize(size[::-1])
        imgs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.)
    return torch.stack(imgs)[None]


def to_pil(img):
    import numpy as np
    from PIL import Image
    arr = (img.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr)


def draw_strip(prompt, candidates, layout: str):
    """prompt (N, 3, H, W), candidates [(K, 3, H, W)] -> one PIL image; new images outlined red."""
    from PIL import Image, ImageDraw
    H, W = prompt.shape[-2:]
    pad = 4
    rows = []
    for new in candidates:
        seq = [(im, False) for im in prompt] + [(im, True) for im in new]
        if layout == 'analogy':  # columns of (x, y); the query's x and its generated y last
            cols = [seq[i:i + 2] for i in range(0, len(seq), 2)]
            grid = [[c[0] for c in cols], [c[1] if len(c) > 1 else None for c in cols]]
        else:
            grid = [seq]
        rows.extend(grid)
    ncols = max(len(r) for r in rows)
    canvas = Image.new('RGB', (ncols * (W + pad) + pad, len(rows) * (H + pad) + pad), 'white')
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell is None:
                continue
            img, is_new = cell
            x, y = pad + c * (W + pad), pad + r * (H + pad)
            canvas.paste(to_pil(img), (x, y))
            if is_new:
                draw.rectangle([x - 2, y - 2, x + W + 1, y + H + 1], outline='red', width=2)
    return canvas


def main():
    args = parse_args()
    import torch
    from mmengine.config import Config

    import visionllama_mm  # noqa: F401
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    model = load_model(cfg, args.checkpoint, args.tokenizer_checkpoint, device)
    size = cfg.get('image_size', None) or model.tokenizer.resolution
    size = (size, size) if isinstance(size, int) else tuple(size)
    if args.layout == 'analogy' and len(args.prompt) % 2 != 1:
        raise SystemExit('--layout analogy takes pairs then a query: an odd number of images.')
    prompt = read_images(args.prompt, size).to(device)
    g = torch.Generator(device=device).manual_seed(args.seed)
    os.makedirs(args.out_dir, exist_ok=True)
    candidates = []
    for c in range(args.candidates):
        new = model.generate_images(
            prompt, num_new_images=args.num_new, context_images=args.context_images,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            codes_only=not args.allow_special, generator=g)[0]
        candidates.append(new)
        for k, img in enumerate(new):
            to_pil(img).save(osp.join(args.out_dir, f'candidate{c}_new{k}.png'))
    draw_strip(prompt[0], candidates, args.layout).save(osp.join(args.out_dir, 'strip.png'))
    print(f'wrote {args.candidates * args.num_new} generated image(s) and strip.png to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
