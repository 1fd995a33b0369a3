"""Convert a released VisionLLaMA checkpoint into one that loads into this package's configs.

    python tools/model_converters/vision_llama_official.py SRC DST

Recognised formats (detected from the keys, printed): the official DeiT-style supervised plain
and pyramid checkpoints (``{'model': ...}``, timm layout) and the official mmpretrain-fork MAE
pre-training / fine-tuning checkpoints. The output is ``{'state_dict', 'meta'}`` with tensors only,
loadable with ``torch.load(weights_only=True)``, ``load_from=DST`` or
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.
"""
from visionllama_mm.converters import run_cli

if __name__ == '__main__':
    run_cli('VisionLLaMA', __doc__.split('\n')[0])
