"""Write LVM visual sentences (``VisualSentenceDataset`` JSON lines) from folders.

    python tools/lvm/build_sentences.py OUT.jsonl --data-root DIR [--seed 0] [--overwrite]
        KIND [options]

    KIND          folders (relative to --data-root)     layout of one sentence
    single        --images D                            [image]
    frames        --sequences D1 D2 .. (frame folders)  [f1 .. f16], stride U[1, 4], random start
    video         --videos D (video files)              [f1 .. f16] at each --strides value
    pair          --inputs D --targets D                [x1, y1, .., x8, y8], new pairs per epoch
    colorization  --images D                            [g1, c1, .., g8, c8] (gray made on load)
    inpainting    --images D                            [m1, o1, .., m8, o8] (masks made on load)
    category      --classes D (a sub-folder per class)  4 images from each of 4 classes
    multi         --modalities NAME=D .. (same names)   3 examples x all modalities

Options (defaults as the official scripts): --n-frames 16, --max-stride 4, --strides 8,
--n-shots (8 pairs; 4 classes), --images-per-shot 4, --n-examples 3, --n-epochs (pair 5,
colorization 2, inpainting 5, multi 5, others 1), --no-shuffle-tasks. Paths in the lines are
relative to --data-root; tokenize them with ``tools/lvm/tokenize_sentences.py``.

``OUT.jsonl.record.json`` beside the output records what it was built from (KIND, the absolute
--data-root, --seed, every option and a fingerprint of the lines). Run again with the same inputs
it leaves OUT alone; with other inputs (another folder, seed, option, or folders whose files
changed) it refuses, naming every differing field (then -> now), and so does an OUT without a
record. ``--overwrite`` replaces OUT on purpose.
"""
import argparse
import os
import os.path as osp

from visionllama_mm.datasets import visual_sentences as vs
from visionllama_mm.datasets.run_record import (RunRecordMismatch, check_record, json_fingerprint,
                                                read_record, write_record)

N_EPOCHS = dict(pair=5, colorization=2, inpainting=5, multi=5)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Write LVM visual sentences from folders')
    p.add_argument('out_file')
    p.add_argument('--data-root', default='', help='the folders and the written paths are '
                   'relative to it')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true',
                   help='replace OUT even when it was built from other inputs')
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--n-epochs', type=int, default=None,
                        help='passes over the data (default: the official script\'s)')
    kinds = p.add_subparsers(dest='kind', required=True)

    def add_kind(name):
        return kinds.add_parser(name, parents=[common])

    for kind in ('single', 'colorization', 'inpainting'):
        k = add_kind(kind)
        k.add_argument('--images', required=True)
        if kind != 'single':
            k.add_argument('--n-shots', type=int, default=8)
    k = add_kind('frames')
    k.add_argument('--sequences', nargs='+', required=True)
    k.add_argument('--n-frames', type=int, default=16)
    k.add_argument('--max-stride', type=int, default=4)
    k = add_kind('video')
    k.add_argument('--videos', required=True)
    k.add_argument('--n-frames', type=int, default=16)
    k.add_argument('--strides', type=int, nargs='+', default=[8])
    k = add_kind('pair')
    k.add_argument('--inputs', required=True)
    k.add_argument('--targets', required=True)
    k.add_argument('--n-shots', type=int, default=8)
    k = add_kind('category')
    k.add_argument('--classes', required=True)
    k.add_argument('--images-per-shot', type=int, default=4)
    k.add_argument('--n-shots', type=int, default=4)
    k = add_kind('multi')
    k.add_argument('--modalities', nargs='+', required=True, metavar='NAME=DIR')
    k.add_argument('--n-examples', type=int, default=3)
    k.add_argument('--no-shuffle-tasks', action='store_true')
    args = p.parse_args(argv)
    if args.kind == 'multi' and not all('=' in m for m in args.modalities):
        p.error('--modalities takes NAME=DIR pairs, e.g. rgb=images depth=labels/depth')
    for name in ('n_epochs', 'n_shots', 'n_frames', 'max_stride', 'images_per_shot',
                 'n_examples'):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            p.error(f'--{name.replace("_", "-")} must be >= 1, got {value}')
    if any(s < 1 for s in getattr(args, 'strides', None) or ()):
        p.error(f'--strides must all be >= 1, got {args.strides}')
    if args.seed < 0:
        p.error(f'--seed must be >= 0, got {args.seed}')
    if args.data_root and not osp.isdir(args.data_root):
        p.error(f'--data-root {args.data_root} is not a folder')
    if osp.isdir(args.out_file):
        p.error(f'OUT {args.out_file} is a folder; give the JSON-lines file to write')
    return args


def build(args) -> list:
    """The lines for ``args`` (see the module docstring)."""
    root, seed = args.data_root, args.seed
    epochs = args.n_epochs or N_EPOCHS.get(args.kind, 1)
    if args.kind == 'single':
        return vs.single_image_sentences(vs.list_images(args.images, root))
    if args.kind in ('colorization', 'inpainting'):
        build_fn = getattr(vs, f'{args.kind}_sentences')
        return build_fn(vs.list_images(args.images, root), n_shots=args.n_shots,
                        n_epochs=epochs, seed=seed)
    if args.kind == 'frames':
        return vs.frame_sequence_sentences([vs.list_images(d, root) for d in args.sequences],
                                           n_frames=args.n_frames, max_stride=args.max_stride,
                                           n_epochs=epochs, seed=seed)
    if args.kind == 'video':
        return vs.video_sentences(vs.list_videos(args.videos, root), root,
                                  n_frames=args.n_frames, strides=args.strides,
                                  n_epochs=epochs, seed=seed)
    if args.kind == 'pair':
        return vs.paired_sentences(vs.list_images(args.inputs, root),
                                   vs.list_images(args.targets, root), n_shots=args.n_shots,
                                   n_epochs=epochs, seed=seed)
    if args.kind == 'category':
        return vs.category_sentences(vs.list_classes(args.classes, root),
                                     images_per_shot=args.images_per_shot,
                                     n_shots=args.n_shots, n_epochs=epochs, seed=seed)
    modalities = dict(m.split('=', 1) for m in args.modalities)
    return vs.multi_annotation_sentences(
        {name: vs.list_images(d, root) for name, d in modalities.items()},
        n_examples=args.n_examples, n_epochs=epochs, shuffle_tasks=not args.no_shuffle_tasks,
        seed=seed)


def record_of(args, lines: list) -> dict:
    """What OUT is built from (see the module docstring)."""
    options = {k: v for k, v in sorted(vars(args).items())
               if k not in ('out_file', 'data_root', 'overwrite')}
    return dict(options, data_root=osp.abspath(args.data_root), num_sentences=len(lines),
                sentences=json_fingerprint(lines))


def main(argv=None):
    args = parse_args(argv)
    lines = build(args)
    out, record_path = args.out_file, args.out_file + '.record.json'
    record = record_of(args, lines)
    if osp.exists(out) and not args.overwrite:
        try:
            then = read_record(record_path)
            if then is None:
                raise RunRecordMismatch(
                    f'{out} exists and has no {osp.basename(record_path)} beside it: it was not '
                    'built by this tool (or by an older version), so it is not replaced; pass '
                    '--overwrite to replace it, or write another file.')
            check_record(then, record, out, what='built',
                         hint='pass --overwrite to replace it, or write another file')
        except RunRecordMismatch as err:
            raise SystemExit(str(err)) from None
        print(f'{osp.abspath(out)} already holds these {len(lines)} {args.kind} sentences; '
              'nothing to do.')
        return
    if osp.exists(out):  # --overwrite: never leave the new record beside the old lines
        os.remove(out)
    write_record(record_path, record)
    vs.write_sentences(lines, out)
    print(f'wrote {len(lines)} {args.kind} sentences to {osp.abspath(out)}')


if __name__ == '__main__':
    main()
