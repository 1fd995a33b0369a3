from ..backbones.vision_llama_convert import convert_official_mae
from .fcmae import FCMAE, FCMAEDecoder, SparseConvNeXtV2
from .mae_vision_llama import MAEVisionLLaMA

__all__ = ['MAEVisionLLaMA', 'convert_official_mae', 'FCMAE', 'FCMAEDecoder', 'SparseConvNeXtV2']
