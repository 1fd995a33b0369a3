from .convert import convert_official_dit  # noqa: F401
from .dit_llama import DiTLLaMA  # noqa: F401
from .flow_matching import FlowMatching  # noqa: F401
from .gaussian_diffusion import GaussianDiffusion, space_timesteps  # noqa: F401
from .generator import ClassConditionalDiffusion, GenerationDataPreprocessor  # noqa: F401
from .vae import SD_VAE_CONFIG, StableDiffusionVAE  # noqa: F401
