from .base import VisionBackbone, drop_path_rates
from .convnextv2 import ConvNeXtV2
from .llama import LLaMADecoder
from .pyramid_vision_llama import PyramidVisionLLaMA
from .vision_llama import VisionLLaMA
from .vision_llama_convert import convert_official_plain, convert_official_pyramid
from .vitamin import ViTamin
from .vitamin_convert import convert_timm_vitamin

__all__ = [
    'VisionBackbone', 'drop_path_rates', 'ConvNeXtV2', 'LLaMADecoder', 'VisionLLaMA',
    'convert_official_plain', 'PyramidVisionLLaMA', 'convert_official_pyramid', 'ViTamin',
    'convert_timm_vitamin'
]
