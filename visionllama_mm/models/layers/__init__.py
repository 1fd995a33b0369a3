"""Layers shared by every backbone of the package."""
from .attention import Attention, KVCache
from .block import TransformerBlock
from .mlp import GatedFFN, GeGLUFFN, SwiGLUFFN, llama_hidden_dims
from .norm import GRN, LayerNorm2d, RMSNorm, grn_channels_last, norm_channels
from .patch_embed import PatchEmbed
from .rope import RopeTable, RotaryEmbedding, apply_rope, grid_positions
from .window import window_partition, window_unpartition

__all__ = [
    'Attention', 'KVCache', 'TransformerBlock', 'GatedFFN', 'GeGLUFFN', 'SwiGLUFFN',
    'llama_hidden_dims', 'GRN', 'LayerNorm2d', 'RMSNorm', 'grn_channels_last', 'norm_channels',
    'PatchEmbed', 'RopeTable',
    'RotaryEmbedding', 'apply_rope', 'grid_positions', 'window_partition', 'window_unpartition'
]
