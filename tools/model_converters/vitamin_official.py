"""Convert released ViTamin checkpoints for this package's configs; export ours to timm, OpenCLIP.

    python tools/model_converters/vitamin_official.py SRC DST
    python tools/model_converters/vitamin_official.py OURS DST --to timm|open_clip

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

``--to`` goes the other way, from this package's checkpoint (a ``tools/train.py`` output or a
converted file) to the peer library's keys; DST without an extension gets ``.safetensors``:

- ``--to timm``: the image tower of an ``ImageClassifier`` (its ``LinearClsHead`` as timm's
  ``head``), of a ``ContrastiveCLIP`` (headless: ``num_classes=0``) or a bare ``ViTamin`` ->
  ``timm.create_model('vitamin_<arch>_<size>', num_classes=...).load_state_dict(...)``;
- ``--to open_clip``: a ``ContrastiveCLIP`` with a ViTamin image tower ->
  ``open_clip.create_model('ViTamin-<arch>')`` (``CustomTextCLIP`` keys; give its ``text_cfg``
  when the text tower is not the named model's).
"""
from visionllama_mm.converters import run_cli

if __name__ == '__main__':
    run_cli('visionllama_mm.models.backbones.vitamin_convert', __doc__.split('\n')[0])
