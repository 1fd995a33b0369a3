"""Write captioned digits for the tiny CLIP configs: webdataset shards and a JSON-lines file.

    python tools/dataset_converters/digit_captions.py DIGITS_ROOT OUT_ROOT [--shards 4]
        [--seed 0] [--overwrite]

DIGITS_ROOT is the quickstart's digits folder (written there first if it does not exist). Each
training image gets one caption from TRAIN_TEMPLATES with its number word ("a photo of the number
seven."); the zero-shot templates of configs/vitamin/clip_vitamin-tiny_*_digits.py are none of them.
OUT_ROOT/train.record.json records what the files were written from; a rerun with the same inputs
writes nothing, one with other inputs (another DIGITS_ROOT, --shards, --seed) is refused, naming
them, unless --overwrite (which deletes every old train-*.tar first).
"""
import argparse
import os.path as osp

from visionllama_mm.datasets import prepare_digits, write_digit_captions

TRAIN_TEMPLATES = ('a photo of the number {}.', 'the digit {}.', 'a handwritten {}.',
                   'an image of a {}.', 'a scan of the numeral {}.', 'a {} written by hand.')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('digits_root')
    parser.add_argument('out_root')
    parser.add_argument('--shards', type=int, default=4, help='webdataset shards to write')
    parser.add_argument('--seed', type=int, default=0, help='draws the caption templates')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the files of a run with other inputs in OUT_ROOT')
    args = parser.parse_args(argv)
    if args.shards < 1:
        parser.error(f'--shards must be >= 1, got {args.shards}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}')
    for name in ('digits_root', 'out_root'):
        path = getattr(args, name)
        if osp.exists(path) and not osp.isdir(path):
            parser.error(f'{name.upper()} {path} is a file, not a folder')
    return args


def main(argv=None):
    args = parse_args(argv)
    prepare_digits(args.digits_root)
    try:
        out = write_digit_captions(args.digits_root, args.out_root, TRAIN_TEMPLATES,
                                   num_shards=args.shards, seed=args.seed,
                                   overwrite=args.overwrite)
    except ValueError as err:  # inputs that differ from those OUT_ROOT was written from
        raise SystemExit(str(err)) from None
    print(f'{out}/train.jsonl and {args.shards} shards {out}/train-*.tar are ready')


if __name__ == '__main__':
    main()
