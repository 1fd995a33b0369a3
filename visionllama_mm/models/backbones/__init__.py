from .vision_llama import VisionLLaMA, VisionLLaMABlock, convert_official_plain

__all__ = ['VisionLLaMA', 'VisionLLaMABlock', 'convert_official_plain']
