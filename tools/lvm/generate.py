"""Prompt an LVM with images and write the images it generates as PNG.

    python tools/lvm/generate.py CONFIG CHECKPOINT --prompt a.png b.png c.png --out-dir out/
        [--num-new 1] [--candidates 2] [--temperature 1.0] [--top-k 50] [--top-p 1.0]
        [--context-images 16] [--allow-special] [--layout sequence|analogy]
        [--tokenizer-checkpoint VQGAN.pth] [--seed 0] [--device cpu|cuda] [--cfg-options k=v]

The prompt is a visual sentence: a run of frames (``--layout sequence``: the next frame(s) are
generated) or analogy pairs ``x1 y1 x2 y2 ... x_query`` (``--layout analogy``: ``y_query`` is
generated). A folder given to ``--prompt`` stands for its images sorted by name. Each prompt
image is resized to the tokenizer's resolution (no crop), tokenized on its own and concatenated
without BOS, as the official inference does; the last ``context_images - 1`` images are kept as
context (``--context-images`` >= 2: at least the last prompt image; values above the prompt's
image count keep the whole prompt). Sampling uses the KV cache and always emits exactly
``tokens_per_image`` tokens per new image, VQ codes only unless ``--allow-special`` (the released
generation config's EOS id, 2, is a VQ code). Defaults are the official ones: temperature 1,
top-k 50, top-p 1 (``--temperature 0``: greedy, with neither top-k nor top-p).

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

from visionllama_mm.cli import (checkpoint_file, config_file, device, float_range,
                                image_file_suffixes, int_range, non_negative_float,
                                non_negative_int, output_dir, positive_int, seed)


def prompt_path(text):
    """``--prompt`` entries: image files, or folders whose images (by name) are taken in order."""
    if not osp.exists(text):
        raise argparse.ArgumentTypeError(f'no such image file or folder: {text!r}')
    return text


def expand_prompt(parser, paths):
    """Folders -> their image files sorted by name; a folder without images is refused."""
    files = []
    for path in paths:
        if not osp.isdir(path):
            files.append(path)
            continue
        images = sorted(osp.join(path, f) for f in os.listdir(path)
                        if f.lower().endswith(image_file_suffixes)
                        and osp.isfile(osp.join(path, f)))
        if not images:
            parser.error(f'argument --prompt: the folder {path!r} has no images (files ending '
                         f'in {", ".join(image_file_suffixes)})')
        files += images
    return files


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Generate the next image(s) of a visual prompt')
    p.add_argument('config', type=config_file)
    p.add_argument('checkpoint', type=checkpoint_file)
    p.add_argument('--prompt', nargs='+', required=True, type=prompt_path,
                   help='prompt image files in order, or folders (their images sorted by name)')
    p.add_argument('--out-dir', required=True, type=output_dir)
    p.add_argument('--num-new', type=positive_int, default=1,
                   help='images to generate per candidate')
    p.add_argument('--candidates', type=positive_int, default=1, help='independent samples')
    p.add_argument('--temperature', type=non_negative_float, default=1.0,
                   help='0: greedy (the most likely id; no top-k / top-p)')
    p.add_argument('--top-k', type=non_negative_int, default=None, help='0: no top-k (default 50)')
    p.add_argument('--top-p', type=float_range(0, 1, low_open=True), default=None,
                   help='nucleus sampling: keep the most likely ids up to this probability mass '
                   '(default 1: no top-p)')
    p.add_argument('--context-images', type=int_range(), default=16,
                   help='images in the sampling window: the last context-images - 1 prompt '
                   '(and already generated) images and the image being generated (official: 16)')
    p.add_argument('--allow-special', action='store_true',
                   help='let the sampler emit ids >= the codebook size (default: codes only)')
    p.add_argument('--layout', choices=['sequence', 'analogy'], default='sequence')
    p.add_argument('--tokenizer-checkpoint', type=checkpoint_file,
                   help='tokenizer weights when CHECKPOINT has none')
    p.add_argument('--seed', type=seed, default=0)
    p.add_argument('--device', type=device, default=None,
                   help='default: cuda if available, else cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config settings, key=value (as tools/test.py)')
    args = p.parse_args(argv)
    if args.temperature == 0:
        given = [f'--{n} {v}' for n, v in (('top-k', args.top_k), ('top-p', args.top_p))
                 if v is not None]
        if given:
            p.error(f'argument --temperature: 0 samples greedily, so {" and ".join(given)} '
                    'would have no effect; drop them or use a temperature > 0')
        if args.candidates > 1:
            p.error(f'argument --candidates: {args.candidates} candidates with --temperature 0 '
                    '(greedy) would all be the same images; use --candidates 1 or a '
                    'temperature > 0')
    args.top_k = 50 if args.top_k is None else args.top_k
    args.top_p = 1.0 if args.top_p is None else args.top_p
    args.prompt = expand_prompt(p, args.prompt)
    check_prompt_window(p, len(args.prompt), args.context_images, args.layout)
    return args


def check_prompt_window(parser, num_prompt: int, context_images: int, layout: str) -> None:
    """The window keeps the last ``context_images - 1`` prompt images: at least one
    (``--context-images >= 2``) and at most all of them (larger values keep the whole prompt).
    An analogy prompt ``x1 y1 ... x_query`` must keep whole pairs and the query, i.e. an odd
    number of images."""
    if layout == 'analogy' and num_prompt % 2 != 1:
        parser.error(f'argument --prompt: --layout analogy takes pairs then a query (x1 y1 x2 y2 '
                     f'... x_query): an odd number of images, got {num_prompt}')
    if context_images < 2:
        parser.error(f'argument --context-images: {context_images} leaves no prompt image in the '
                     f'window, which holds context_images - 1 = {context_images - 1} prompt '
                     f'image(s) and the image being generated. Use 2 (the last prompt image '
                     f'only) to {num_prompt + 1} (the whole prompt of {num_prompt} image(s)); '
                     'larger values keep the whole prompt too')
    kept = min(num_prompt, context_images - 1)
    if layout == 'analogy' and kept % 2 != 1:
        parser.error(f'argument --context-images: {context_images} keeps the last {kept} of the '
                     f'{num_prompt} prompt images, which starts the context with a y image; for '
                     '--layout analogy use an even value (it keeps whole x y pairs and the '
                     f'query), e.g. {context_images + 1}')


def check_codebook(state_dict, model, where: str) -> None:
    """Refuse tokenizer weights whose codebook size is not the LVM's ``num_codes``, naming the
    file and both sizes (ids of one codebook mean nothing to a decoder trained on another)."""
    key = 'tokenizer.quantize.embedding.weight'
    if key not in state_dict:
        return
    codes = state_dict[key].shape[0]
    if codes != model.num_codes:
        vocab = getattr(model.backbone, 'vocab_size', None)
        specials = f' = {model.num_codes} codes + {vocab - model.num_codes} special ids' \
            if vocab else ''
        raise SystemExit(
            f'{where}: the tokenizer has a codebook of {codes} codes ({key[len("tokenizer."):]} '
            f'{tuple(state_dict[key].shape)}), but the LVM is built for num_codes='
            f'{model.num_codes} (vocabulary {vocab}{specials}). Use the tokenizer the LVM was '
            'trained with, or a config whose model.num_codes and tokenizer match it.')


def load_model(cfg, checkpoint: str, tokenizer_checkpoint=None, device='cpu'):
    """Build ``cfg.model`` (an LVM with a tokenizer) and load its weights, reporting every key
    that does not match."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    from visionllama_mm.engine.pretrained import load_checkpoint_source
    from visionllama_mm.models.lvm.convert import check_keys

    init_default_scope('mmpretrain')
    if cfg.model.get('type') != 'LVM' or not cfg.model.get('tokenizer'):
        raise SystemExit(f'{cfg.filename}: generate.py needs an LVM config with a tokenizer '
                         '(model.tokenizer).')
    model = MODELS.build(cfg.model)
    model.init_weights()  # the tokenizer's init_cfg, if any
    # local paths or http(s) URLs (downloaded into torch's hub cache; one-line error offline)
    try:
        ckpt = load_checkpoint_source(checkpoint, map_location='cpu', what='CHECKPOINT')
    except (OSError, RuntimeError, ValueError) as err:  # unreadable, offline URL, not a checkpoint
        raise SystemExit(f'generate.py: {err}') from None
    sd = ckpt.get('state_dict', ckpt)
    own = model.state_dict()
    tok_keys = {k for k in own if k.startswith('tokenizer.')}
    if tokenizer_checkpoint:
        try:
            tok = load_checkpoint_source(tokenizer_checkpoint, map_location='cpu',
                                         what='--tokenizer-checkpoint')
        except (OSError, RuntimeError, ValueError) as err:
            raise SystemExit(f'generate.py: {err}') from None
        tok = {f'tokenizer.{k}': v for k, v in tok.get('state_dict', tok).items()}
        check_codebook(tok, model, f'--tokenizer-checkpoint {tokenizer_checkpoint}')
        try:
            check_keys(tok, {k: own[k].shape for k in tok_keys},
                       f"--tokenizer-checkpoint {tokenizer_checkpoint}: does not match the "
                       "config's model.tokenizer")
        except ValueError as e:
            raise SystemExit(str(e)) from None
        sd = {**tok, **{k: v for k, v in sd.items() if not k.startswith('tokenizer.')}}
    elif tok_keys & set(sd):
        check_codebook(sd, model, f'{checkpoint} (its tokenizer)')
    # without tokenizer weights here, the tokenizer may come from model.tokenizer.init_cfg
    with_tokenizer = bool(tok_keys & set(sd))
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


def open_images(paths):
    """Prompt files -> RGB PIL images, each file named when PIL cannot read it."""
    from PIL import Image, UnidentifiedImageError
    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                images.append(im.convert('RGB'))
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise SystemExit(f'--prompt: {p} is not an image PIL can read ({e})') from None
    return images


def read_images(paths, size):
    """Files -> (1, N, 3, H, W) float in [0, 1], resized to ``size`` with PIL's default filter
    (no crop, as the official inference); a note lists the images that were resized."""
    import numpy as np
    import torch
    imgs, resized = [], []
    for p, im in zip(paths, open_images(paths)):
        if im.size != tuple(size[::-1]):
            resized.append(f'{osp.basename(p)} {im.size[1]}x{im.size[0]}')
            im = im.resize(size[::-1])
        imgs.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.)
    if resized:
        print(f'note: {len(resized)} prompt image(s) resized to {size[0]}x{size[1]} (HxW, the '
              f'tokenizer\'s input size; no crop): {", ".join(resized[:8])}'
              + (' ...' if len(resized) > 8 else ''))
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
    from visionllama_mm.engine.checks import check_cfg_options
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = Config.fromfile(args.config)
    check_cfg_options(cfg, args.cfg_options)
    cfg.merge_from_dict(args.cfg_options)
    open_images(args.prompt)  # unreadable files are named before the checkpoint is read
    model = load_model(cfg, args.checkpoint, args.tokenizer_checkpoint, device)
    size = cfg.get('image_size', None) or model.tokenizer.resolution
    size = (size, size) if isinstance(size, int) else tuple(size)
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
