"""Convert released VisionLLaMA checkpoints to this package's layout, and back (--to official).

    python tools/model_converters/vision_llama_official.py SRC DST
    python tools/model_converters/vision_llama_official.py SRC DST --to official

Recognised formats (detected from the keys, printed): the official DeiT-style supervised plain
and pyramid checkpoints (``{'model': ...}``, timm layout) and the official mmpretrain-fork MAE
pre-training / fine-tuning checkpoints. The output is ``{'state_dict', 'meta'}`` with tensors only,
loadable with ``torch.load(weights_only=True)``, ``load_from=DST`` or
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

``--to official``: SRC is a plain or pyramid ``ImageClassifier`` checkpoint of this package
(``tools/train.py`` output or a converted file); DST is ``{'model': ...}`` in the official DeiT
layout (``.pth`` appended when DST has no extension). See
:mod:`visionllama_mm.models.backbones.vision_llama_convert`.
"""
from visionllama_mm.converters import run_cli
from visionllama_mm.models.backbones import vision_llama_convert

if __name__ == '__main__':
    run_cli(vision_llama_convert, __doc__.split('\n')[0])
