from .dit_llama import DiTLLaMA  # noqa: F401
from .convert import convert_official_dit  # noqa: F401
