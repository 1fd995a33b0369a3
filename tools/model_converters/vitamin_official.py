"""Convert a released ViTamin checkpoint into one that loads into this package's configs.

    python tools/model_converters/vitamin_official.py SRC DST

Recognised formats (detected from the keys, printed):

- ``open-clip-vitamin``: the OpenCLIP ViTamin CLIP checkpoints (the released
  ``open_clip_pytorch_model.bin``, a bare state dict; OpenCLIP training checkpoints
  ``{'state_dict': ...}``, ``module.`` prefixes of DDP runs removed): image tower
  ``visual.trunk.*``, projection ``visual.head.proj.weight``, text tower under ``text.``
  (``CustomTextCLIP``) or at the top level (plain ``CLIP``), ``logit_scale`` -> ``ContrastiveCLIP``
  keys (``visual.*``, ``visual_proj.weight``, ``text.*``, ``logit_scale``). The image tower then
  loads into every ViTamin config of ``configs/vitamin/`` (the ImageNet fine-tuning, UperNet and
  Mask R-CNN configs, ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='visual.')``, their
  ``pretrained``), the whole file into a ``ContrastiveCLIP`` of the same size (``load_from=DST``),
  and its text tower into LTT runs (``model.text_checkpoint=DST``; the unconverted file works too);
- ``timm-vitamin``: timm ``vitamin_*`` state dicts (bare, or under ``'state_dict'`` / ``'model'``)
  -> ``ImageClassifier`` keys: ``backbone.*`` and timm's linear head as ``head.fc`` (a
  ``LinearClsHead`` of the head's width; none when the timm model had ``num_classes=0``). Load it
  with ``load_from=DST``, or the backbone alone with ``prefix='backbone.'``.

This package's own checkpoints (converted files, ``tools/train.py`` outputs) are refused as "no
conversion needed". The output is ``{'state_dict', 'meta'}`` with tensors only, loadable with
``torch.load(weights_only=True)``. A checkpoint trained at 224 loads into a model built for another
``img_size`` (its position embedding is resized on load).
"""
from visionllama_mm.converters import run_cli

if __name__ == '__main__':
    run_cli('ViTamin', __doc__.split('\n')[0])
