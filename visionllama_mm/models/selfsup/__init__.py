from .fcmae import FCMAE, FCMAEDecoder, SparseConvNeXtV2
from .mae_vision_llama import MAEVisionLLaMA, convert_official_mae

__all__ = ['MAEVisionLLaMA', 'convert_official_mae', 'FCMAE', 'FCMAEDecoder', 'SparseConvNeXtV2']
