from .dit_llama import DiTLLaMA  # noqa: F401
