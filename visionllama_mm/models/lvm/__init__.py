"""LVM: the VQGAN tokenizer, the LLaMA decoder over visual tokens and the sequence model."""
from .lvm import LVM, LVMDataPreprocessor, sample_next_token  # noqa: F401
from .vqgan import VQGANAutoEncoder, VQGANTokenizer, load_muse_vqgan  # noqa: F401
