from .pyramid_vision_llama import GSAttention, PyramidVisionLLaMA, convert_official_pyramid
from .vision_llama import VisionLLaMA, VisionLLaMABlock, convert_official_plain

__all__ = [
    'VisionLLaMA', 'VisionLLaMABlock', 'convert_official_plain', 'PyramidVisionLLaMA', 'GSAttention',
    'convert_official_pyramid'
]
