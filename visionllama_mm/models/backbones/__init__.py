from .vision_llama import VisionLLaMA, VisionLLaMABlock

__all__ = ['VisionLLaMA', 'VisionLLaMABlock']
