"""Write captioned digits for the tiny CLIP configs: webdataset shards and a JSON-lines file.

    python tools/dataset_converters/digit_captions.py DIGITS_ROOT OUT_ROOT [--shards 4]

DIGITS_ROOT is the quickstart's digits folder (written there first if it does not exist). Each
training image gets one caption from TRAIN_TEMPLATES with its number word ("a photo of the number
seven."); the zero-shot templates of configs/vitamin/clip_vitamin-tiny_*_digits.py are none of them.
"""
import argparse

from visionllama_mm.datasets import prepare_digits, write_digit_captions

TRAIN_TEMPLATES = ('a photo of the number {}.', 'the digit {}.', 'a handwritten {}.',
                   'an image of a {}.', 'a scan of the numeral {}.', 'a {} written by hand.')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('digits_root')
    parser.add_argument('out_root')
    parser.add_argument('--shards', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    prepare_digits(args.digits_root)
    out = write_digit_captions(args.digits_root, args.out_root, TRAIN_TEMPLATES,
                               num_shards=args.shards, seed=args.seed)
    print(f'wrote {out}/train.jsonl and {args.shards} shards {out}/train-*.tar')


if __name__ == '__main__':
    main()
