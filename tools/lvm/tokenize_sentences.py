"""Tokenize visual sentences into an LVM token shard with a frozen VQGAN.

    python tools/lvm/tokenize_sentences.py ANN.jsonl OUT_DIR --tokenizer CONFIG
        [--checkpoint CKPT] [--data-root DIR] [--batch-size 32] [--image-size 256] [--seed 0]
        [--device cpu|cuda] [--chunk-size 1000] [--num-workers 0] [--max-chunks N]
        [--bos 8192] [--eos 8193] [--pad 8194] [--vocab-size 8292] [--overwrite]

ANN.jsonl holds ``VisualSentenceDataset`` lines (paths relative to ``--data-root``); every
sentence goes through the dataset's default pipeline (``--image-size``, no crop; colorization and
inpainting pairs made with ``--seed``), each image is encoded on its own and the sentence is
written as ``BOS, codes..., EOS`` (``PackedTokenDataset``'s shard: ``tokens.npy``,
``offsets.npy``, ``meta.json`` in OUT_DIR, sentences shuffled with ``--seed``).

The tokenizer is built from CONFIG's top-level ``tokenizer`` dict, else ``model.tokenizer``, else
``model`` itself when it is a ``VQGANTokenizer``. Its weights come from CKPT (read with
``weights_only=True``; a ``state_dict`` entry and a ``tokenizer.`` key prefix, as in LVM
checkpoints, are understood; every key must match), else from the config's ``init_cfg``, else
they are random (seeded by ``--seed``; for tests only). ``meta.json`` records a checksum of the
weights, so streams from different tokenizers are never mixed.

Resumable: sentences are encoded in chunks of ``--chunk-size``; each finished chunk is written
atomically (a temporary file renamed) to ``OUT_DIR/parts/`` and recorded in
``OUT_DIR/parts/progress.json``. Run the same command again after an interruption and finished
chunks are skipped; ``--max-chunks N`` stops after N chunks on purpose. When all chunks are done
they are merged into the shard and ``parts/`` is removed.

``OUT_DIR/run_record.json`` records what the shard is made from: a hash of ANN, the absolute
``--data-root``, the number of sentences, the tokenizer's weights checksum and codebook size,
``--image-size``, ``--seed``, ``--chunk-size`` and the special ids (the paths of ANN, CONFIG and
CKPT are kept for information). A run into a folder whose record differs -- with parts of an
interrupted run or a finished shard -- is refused with one error naming every differing field
(then -> now), never merged or reported as "nothing to do". ``--overwrite`` deletes the tool's
files in OUT_DIR (the shard, ``parts/``, the record; nothing else) and starts over.
"""
import argparse
import os
import os.path as osp
import re
import shutil
import sys

RECORD_FILE = 'run_record.json'
# what this tool writes into OUT_DIR (--overwrite deletes these and nothing else)
OWN_FILES = ('tokens.npy', 'offsets.npy', 'meta.json', 'parts', RECORD_FILE,
             'tokens.unshuffled.tmp', 'tokens.tmp.npy', 'offsets.tmp.npy')
# record fields that may change between runs into one folder (paths of the same inputs)
INFORMATIVE = ('ann_file', 'tokenizer_config', 'checkpoint')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Tokenize visual sentences into an LVM token shard')
    p.add_argument('ann_file', help='VisualSentenceDataset JSON lines')
    p.add_argument('out_dir', help='shard directory to write')
    p.add_argument('--tokenizer', required=True, metavar='CONFIG',
                   help='config with a VQGANTokenizer (tokenizer / model.tokenizer / model)')
    p.add_argument('--checkpoint', help='tokenizer (or LVM) checkpoint')
    p.add_argument('--data-root', default='', help='prefix of the paths in ANN')
    p.add_argument('--batch-size', type=int, default=32, help='images per encoder call')
    p.add_argument('--image-size', type=int, default=256)
    p.add_argument('--seed', type=int, default=0,
                   help='inpainting masks, sentence shuffle, random tokenizer weights')
    p.add_argument('--device', default=None, help='default: cuda if available, else cpu')
    p.add_argument('--chunk-size', type=int, default=1000, help='sentences per resumable part')
    p.add_argument('--num-workers', type=int, default=0, help='image-loading processes')
    p.add_argument('--max-chunks', type=int, default=None,
                   help='stop after encoding this many chunks (resume later)')
    p.add_argument('--bos', type=int, default=None, help='default: LVM_BOS (8192)')
    p.add_argument('--eos', type=int, default=None, help='default: LVM_EOS (8193)')
    p.add_argument('--pad', type=int, default=None, help='default: LVM_PAD (8194)')
    p.add_argument('--vocab-size', type=int, default=None, help='default: LVM_VOCAB (8292)')
    p.add_argument('--overwrite', action='store_true',
                   help='delete the shard or parts already in OUT_DIR (of any run), start over')
    args = p.parse_args(argv)
    for name in ('batch_size', 'image_size', 'chunk_size'):
        if getattr(args, name) < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1')
    if args.max_chunks is not None and args.max_chunks < 1:
        p.error('--max-chunks must be >= 1')
    if args.num_workers < 0:
        p.error('--num-workers must be >= 0')
    if args.seed < 0:
        p.error(f'--seed must be >= 0, got {args.seed}')
    for name in ('bos', 'eos', 'pad', 'vocab_size'):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            p.error(f'--{name.replace("_", "-")} must be >= 0')
    if not osp.isfile(args.ann_file):
        p.error(f'annotation file {args.ann_file} does not exist')
    if not osp.isfile(args.tokenizer):
        p.error(f'--tokenizer config {args.tokenizer} does not exist')
    if args.checkpoint and '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        p.error(f'--checkpoint {args.checkpoint} does not exist')
    if args.data_root and not osp.isdir(args.data_root):
        p.error(f'--data-root {args.data_root} is not a folder')
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        p.error(f'OUT_DIR {args.out_dir} is a file, not a folder')
    if args.device is not None and not re.match(r'^(cpu|cuda(:\d+)?)$', args.device):
        p.error(f'--device must be cpu, cuda or cuda:N, got {args.device!r}')
    return args


def tokenizer_config(cfg):
    """The tokenizer's config dict inside a config (see the module docstring)."""
    if cfg.get('tokenizer'):
        return cfg.tokenizer
    model = cfg.get('model') or {}
    if model.get('tokenizer'):
        return model.tokenizer
    if model.get('type') == 'VQGANTokenizer':
        return model
    raise SystemExit(f'{cfg.filename}: no tokenizer found: expected a top-level "tokenizer" '
                     'dict, "model.tokenizer", or a "model" of type VQGANTokenizer.')


def build_tokenizer(config: str, checkpoint, seed: int, device: str):
    """The frozen tokenizer on ``device`` and a checksum of its weights."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import visionllama_mm  # noqa: F401 (registers VQGANTokenizer)
    from visionllama_mm.compat import load_checkpoint_file
    from visionllama_mm.models.lvm.convert import check_keys
    from visionllama_mm.utils import weights_checksum

    cfg = Config.fromfile(config)
    tok_cfg = tokenizer_config(cfg).copy()
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)  # random weights (no checkpoint) are the same on every resume
    tokenizer = MODELS.build(tok_cfg)
    if checkpoint:
        state = load_checkpoint_file(checkpoint, map_location='cpu')
        state = state.get('state_dict', state)
        if any(k.startswith('tokenizer.') for k in state):
            state = {k[len('tokenizer.'):]: v for k, v in state.items()
                     if k.startswith('tokenizer.')}
        try:
            check_keys(state, {k: v.shape for k, v in tokenizer.state_dict().items()},
                       f'{checkpoint} does not match the tokenizer of {config}')
        except ValueError as e:
            raise SystemExit(str(e)) from None
        tokenizer.load_state_dict(state, strict=True)
    elif tok_cfg.get('init_cfg'):
        tokenizer.init_weights()
    else:
        print(f'WARNING: no --checkpoint and no init_cfg in {config}: the tokenizer has random '
              f'weights (--seed {seed}); fine for tests, useless for training.',
              file=sys.stderr)
    tokenizer.eval().requires_grad_(False).to(device)
    return tokenizer, f'{type(tokenizer).__name__}:sha256:{weights_checksum(tokenizer)}'


def encode_chunk(tokenizer, dataset, indices, batch_size: int, device: str, progress):
    """Encode the sentences ``indices`` of ``dataset`` -> (flat uint16 codes, lengths int64)."""
    import numpy as np
    import torch

    images, counts, codes = [], [], []

    def flush():
        with torch.no_grad():
            ids = tokenizer.encode(torch.stack(images).to(device))
        codes.append(ids.cpu().numpy().astype(np.uint16))
        images.clear()

    for item in dataset(indices):
        counts.append(item['inputs'].shape[0])
        for img in item['inputs']:
            images.append(img)
            if len(images) == batch_size:
                flush()
        progress.update()
    if images:
        flush()
    codes = np.concatenate(codes)  # (images, tokens per image)
    return codes.reshape(-1), np.asarray(counts, np.int64) * codes.shape[1]


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch
    from mmengine.utils import ProgressBar
    from torch.utils.data import DataLoader, Subset

    from visionllama_mm.datasets import (LVM_BOS, LVM_EOS, LVM_PAD, LVM_VOCAB,
                                         VisualSentenceDataset, write_token_shard)
    from visionllama_mm.datasets.run_record import (RunRecordMismatch, check_record,
                                                    foreign_entries, read_record, remove_outputs,
                                                    write_record)
    from visionllama_mm.datasets.token_streams import _check_ids
    from visionllama_mm.utils import atomic_path, file_sha256, write_json

    ids = dict(bos=LVM_BOS if args.bos is None else args.bos,
               eos=LVM_EOS if args.eos is None else args.eos,
               pad=LVM_PAD if args.pad is None else args.pad,
               vocab_size=LVM_VOCAB if args.vocab_size is None else args.vocab_size)
    out = args.out_dir
    foreign = foreign_entries(out, OWN_FILES)
    if foreign:
        raise SystemExit(f'{out} is not empty and holds files this tool does not write '
                         f'({", ".join(foreign[:5])}): it is not a token shard folder written by '
                         'this tool (--overwrite deletes only its own files). Use a new or empty '
                         'OUT_DIR.')
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device.startswith('cuda') and not torch.cuda.is_available():
        raise SystemExit(f'--device {device}: no CUDA device is available; use --device cpu.')
    tokenizer, checksum = build_tokenizer(args.tokenizer, args.checkpoint, args.seed, device)
    factor, codebook = tokenizer.downsample_factor, tokenizer.num_embeddings
    if args.image_size % factor:
        raise SystemExit(f'--image-size {args.image_size} is not a multiple of the tokenizer\'s '
                         f'downsampling factor {factor}.')
    try:  # at start-up, not after hours of encoding
        _check_ids(codebook, where='--bos/--eos/--pad/--vocab-size', **ids)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    dataset = VisualSentenceDataset(osp.abspath(args.ann_file), data_root=args.data_root,
                                    image_size=args.image_size, seed=args.seed)
    n = len(dataset)
    chunks = [range(s, min(s + args.chunk_size, n)) for s in range(0, n, args.chunk_size)]
    settings = dict(ann_sha256=file_sha256(args.ann_file), data_root=osp.abspath(args.data_root),
                    num_sentences=n, image_size=args.image_size, chunk_size=args.chunk_size,
                    seed=args.seed, tokenizer=checksum, codebook=codebook, **ids)
    record = dict(settings, ann_file=osp.abspath(args.ann_file),
                  tokenizer_config=osp.abspath(args.tokenizer), checkpoint=args.checkpoint)

    if args.overwrite:
        deleted = remove_outputs(out, OWN_FILES)
        if deleted:
            print(f'--overwrite: deleted {", ".join(deleted)} from {out}.')
    parts = osp.join(out, 'parts')
    progress_path = osp.join(parts, 'progress.json')
    finished = osp.isfile(osp.join(out, 'meta.json'))
    try:
        then = read_record(osp.join(out, RECORD_FILE))
        progress = read_record(progress_path)
        if then is None and progress is not None:  # parts of a run without a record
            then = progress.get('settings', {})
        if then is None and finished:
            raise RunRecordMismatch(
                f'{out} holds a finished shard without {RECORD_FILE}: what it was made from '
                'is unknown, so it is neither reused nor completed; pass --overwrite to start '
                'over, or use another folder.')
        # the chunk size does not change a finished shard's bytes
        check_record(then, record, out, what='tokenized',
                     ignore=INFORMATIVE + (('chunk_size', ) if finished else ()))
    except RunRecordMismatch as err:
        raise SystemExit(str(err)) from None
    if finished:
        print(f'{out} already holds the finished shard of these sentences; nothing to do.')
        return
    os.makedirs(parts, exist_ok=True)
    write_record(osp.join(out, RECORD_FILE), record)
    done = progress['done'] if progress is not None else []
    todo = [c for c in range(len(chunks)) if c not in done]
    if args.max_chunks is not None:
        todo = todo[:args.max_chunks]
    print(f'{n} sentences in {len(chunks)} chunks: {len(done)} done before, {len(todo)} to '
          f'encode now on {device} with {checksum}.')

    def sentences(indices):
        return DataLoader(Subset(dataset, list(indices)), batch_size=None,
                          num_workers=args.num_workers)

    bar = ProgressBar(sum(len(chunks[c]) for c in todo))
    for c in todo:
        codes, lengths = encode_chunk(tokenizer, sentences, chunks[c], args.batch_size, device,
                                      bar)
        path = osp.join(parts, f'part_{c:06d}')
        with atomic_path(path + '.npz', keep_ext=True) as tmp:  # part_N.tmp.npz
            np.savez(tmp, codes=codes, lengths=lengths)
        done = sorted(done + [c])
        write_json(progress_path, dict(settings=settings, done=done))
    print()
    if len(done) < len(chunks):
        print(f'stopped after {len(todo)} chunk(s) (--max-chunks); {len(chunks) - len(done)} '
              'left: run the same command again to continue.')
        return

    def merged():
        for c in range(len(chunks)):
            with np.load(osp.join(parts, f'part_{c:06d}.npz')) as part:
                codes, lengths = part['codes'], part['lengths']
            yield from np.split(codes, np.cumsum(lengths)[:-1])

    meta = write_token_shard(out, merged(), codebook=codebook,
                             tokens_per_image=(args.image_size // factor) ** 2,
                             tokenizer=checksum, seed=args.seed, **ids)
    shutil.rmtree(parts)
    print(f'wrote {out}: {meta["num_sentences"]} sentences, {meta["num_tokens"]} '
          'tokens.')


if __name__ == '__main__':
    main()
