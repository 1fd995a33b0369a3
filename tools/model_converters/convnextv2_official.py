"""Convert released ConvNeXt V2 checkpoints to this package's layout, and export to timm (--to).

    python tools/model_converters/convnextv2_official.py SRC DST
    python tools/model_converters/convnextv2_official.py SRC DST.safetensors --to timm

Recognised formats (detected from the keys, printed):

- ``convnextv2-official``: the official dense checkpoints (``{'model': ...}``, ImageNet fine-tunes
  and supervised models) -> ``ImageClassifier`` keys (``backbone.*``, ``backbone.norm3``,
  ``head.fc``), GRN parameters reshaped to (C,);
- ``convnextv2-fcmae``: the official FCMAE pre-training checkpoints (MinkowskiEngine encoder plus
  dense decoder) -> the FCMAE model's keys (``backbone.*`` without ``norm3``, ``neck.proj``,
  ``neck.mask_token``, ``neck.decoder.*``, ``neck.pred``); sparse kernels become dense conv weights;
- ``timm-convnextv2``: timm ``convnextv2_*`` state dicts -> ``ImageClassifier`` keys.

mmpretrain's released ConvNeXt V2 checkpoints already have this package's layout and are refused as
"no conversion needed", like this package's own checkpoints. The output is
``{'state_dict', 'meta'}`` with tensors only, loadable with ``torch.load(weights_only=True)``,
``load_from=DST`` or ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` (for a backbone alone,
``prefix='backbone.'``).

``--to timm``: SRC is a ConvNeXt V2 ``ImageClassifier`` checkpoint of this package
(``tools/train.py`` output or a converted file) of one of timm's sizes (atto ... huge); DST is the
state dict of ``timm.create_model('convnextv2_<size>', num_classes=<head width>)``, a
``.safetensors`` file unless DST ends with ``.pth`` / ``.pt`` / ``.bin``. FCMAE pre-training
checkpoints have no timm model and are refused.
"""
from visionllama_mm.converters import run_cli
from visionllama_mm.models.backbones import convnextv2_convert

if __name__ == '__main__':
    run_cli(convnextv2_convert, __doc__.split('\n')[0])
