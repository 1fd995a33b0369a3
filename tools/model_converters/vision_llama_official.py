"""Convert a released VisionLLaMA checkpoint into one that loads into this package's configs.

    python tools/model_converters/vision_llama_official.py SRC DST

Recognised formats (detected from the keys, printed): the official DeiT-style supervised plain
and pyramid checkpoints (``{'model': ...}``, timm layout) and the official mmpretrain-fork MAE
pre-training / fine-tuning checkpoints. The output is ``{'state_dict', 'meta'}`` with tensors only,
loadable with ``torch.load(weights_only=True)``, ``load_from=DST`` or
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
import argparse
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='released checkpoint')
    parser.add_argument('dst', help='where to write the converted checkpoint')
    args = parser.parse_args()
    from visionllama_mm.converters import convert_file
    try:
        kind = convert_file(args.src, args.dst)
    except (ValueError, KeyError, RuntimeError, FileNotFoundError) as err:
        sys.exit(f'error: {args.src}: {err}')
    print(f'detected: {kind}\nwrote: {args.dst}')


if __name__ == '__main__':
    main()
