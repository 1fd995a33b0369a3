"""Layers shared by every backbone of the package."""
from .attention import RoPEAttention
from .mlp import GatedFFN, GeGLUFFN, SwiGLUFFN, llama_hidden_dims
from .norm import LayerNorm2d
from .patch_embed import PatchEmbed
from .rope import RotaryEmbedding2D, apply_rope, grid_positions
from .window import window_partition, window_unpartition

__all__ = [
    'RoPEAttention', 'GatedFFN', 'GeGLUFFN', 'SwiGLUFFN', 'llama_hidden_dims', 'LayerNorm2d', 'PatchEmbed',
    'RotaryEmbedding2D', 'apply_rope', 'grid_positions', 'window_partition', 'window_unpartition'
]
