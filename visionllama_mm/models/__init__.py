from . import backbones, diffusion, layers, losses, lvm, multimodal, necks, selfsup  # noqa: F401
from .backbones import *  # noqa: F401,F403
