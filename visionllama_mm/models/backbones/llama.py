"""LLaMA decoder over visual tokens (LVM), in the layout of transformers' ``LlamaForCausalLM``.

    ids (B, L) -> model.embed_tokens -> N x block -> model.norm -> lm_head -> logits (B, L, V)
    block: h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h))

Every block is the package's shared :class:`TransformerBlock` with RMSNorm (eps 1e-6), the shared
:class:`Attention` (bias-free q/k/v/o, causal SDPA, :class:`KVCache`) and SwiGLU
(:class:`SwiGLUFFN`), each in its ``'llama'`` layout; RoPE is the shared 1-D
:class:`RotaryEmbedding` (theta 10000, the whole head, transformers' rotate-half pairing), its
tables built once per length and cached. The parameter names are those of ``LlamaForCausalLM``
(``model.embed_tokens``, ``model.layers.{i}.self_attn.{q,k,v,o}_proj``,
``model.layers.{i}.mlp.{gate,up,down}_proj``, ``model.layers.{i}.{input,post_attention}_layernorm``,
``model.norm``, ``lm_head``), so the released HF checkpoint of LVM (``Emma02/LVM_ckpts``) and any
``LlamaForCausalLM`` state dict with multi-head attention load without renaming.
"""
from functools import partial
from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from ...registry import MODELS
from ..layers import Attention, KVCache, RMSNorm, RotaryEmbedding, SwiGLUFFN, TransformerBlock
from .base import VisionBackbone

__all__ = ['LLaMADecoder', 'LLAMA_PART_NAMES']

# transformers' names of (norm 1, attention, norm 2, MLP) in a LlamaDecoderLayer
LLAMA_PART_NAMES = ('input_layernorm', 'self_attn', 'post_attention_layernorm', 'mlp')


class _LlamaModel(nn.Module):
    """The container transformers calls ``model`` (``LlamaModel``): embedding, blocks, final norm."""

    def __init__(self, vocab_size: int, embed_dims: int, blocks: List[nn.Module], norm_eps: float):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, embed_dims)
        self.layers = nn.ModuleList(blocks)
        self.norm = RMSNorm(embed_dims, eps=norm_eps)


@MODELS.register_module()
class LLaMADecoder(VisionBackbone):
    """Causal LLaMA decoder with an untied, bias-free output head (EasyLM's ``llama_model.py``).

    Args:
        arch: A name of :attr:`arch_zoo` (EasyLM's ``vqlm_*`` sizes) or a dict with
            ``embed_dims`` (transformers' ``hidden_size``), ``feedforward_channels``
            (``intermediate_size``), ``num_layers``, ``num_heads`` (``hidden_dims``, the old name
            of ``feedforward_channels``, is read too but deprecated).
        vocab_size: Embedding rows and logits: 8192 VQ codes + 100 reserved ids (specials) = 8292.
        rope_theta: Base of the RoPE frequencies.
        norm_eps: RMSNorm epsilon.
        init_std: Std of the normal init of every Linear and the embedding (not truncated).
        with_head: Keep ``lm_head`` (logits); ``False`` returns the final hidden states.
        with_cp: Activation checkpointing of every block while training.
        frozen_stages: Freeze the embedding and the first ``frozen_stages`` blocks (-1: none).
        init_cfg: mmengine init config (e.g. ``Pretrained``).

    Shapes:
        ``forward(input_ids (B, L), caches=None)`` -> logits (B, L, vocab_size) (hidden states
        (B, L, C) without the head). With ``caches`` (one :class:`KVCache` per block, see
        :meth:`new_caches`) the new tokens continue the cached ones: RoPE positions start at the
        caches' ``position`` (a tensor, so a compiled decoding step serves every position) and
        the causal mask covers the cached keys.
    """

    # hidden, intermediate, layers, heads of EasyLM's LLAMA_STANDARD_CONFIGS
    arch_zoo = {
        **dict.fromkeys(['debug', 'vqlm_debug'],
                        dict(embed_dims=128, feedforward_channels=256, num_layers=2,
                             num_heads=4)),
        **dict.fromkeys(['100m', 'vqlm_100m'],
                        dict(embed_dims=640, feedforward_channels=1664, num_layers=22,
                             num_heads=10)),
        **dict.fromkeys(['300m', 'vqlm_300m'],
                        dict(embed_dims=1024, feedforward_channels=2688, num_layers=22,
                             num_heads=8)),
        **dict.fromkeys(['600m', 'vqlm_600m'],
                        dict(embed_dims=1536, feedforward_channels=4096, num_layers=22,
                             num_heads=16)),
        **dict.fromkeys(['1b', 'vqlm_1b'],
                        dict(embed_dims=2048, feedforward_channels=5504, num_layers=22,
                             num_heads=16)),
        **dict.fromkeys(['3b', 'vqlm_3b'],
                        dict(embed_dims=3200, feedforward_channels=8640, num_layers=26,
                             num_heads=32)),
        **dict.fromkeys(['7b', 'vqlm_7b'],
                        dict(embed_dims=4096, feedforward_channels=11008, num_layers=32,
                             num_heads=32)),
        **dict.fromkeys(['13b', 'vqlm_13b'],
                        dict(embed_dims=5120, feedforward_channels=13824, num_layers=40,
                             num_heads=40)),
        **dict.fromkeys(['20b', 'vqlm_20b'],
                        dict(embed_dims=6144, feedforward_channels=16128, num_layers=46,
                             num_heads=48)),
        **dict.fromkeys(['30b', 'vqlm_30b'],
                        dict(embed_dims=6656, feedforward_channels=17920, num_layers=60,
                             num_heads=52)),
    }
    arch_keys = ('embed_dims', 'feedforward_channels', 'num_layers', 'num_heads')
    arch_aliases = {'hidden_dims': 'feedforward_channels'}

    def __init__(self,
                 arch='debug',
                 vocab_size: int = 8292,
                 rope_theta: float = 10000.,
                 norm_eps: float = 1e-6,
                 init_std: float = 0.02,
                 with_head: bool = True,
                 with_cp: bool = False,
                 frozen_stages: int = -1,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        self.embed_dims = self.check_int('embed_dims', arch['embed_dims'])
        self.feedforward_channels = self.check_int('feedforward_channels',
                                                   arch['feedforward_channels'])
        self.num_layers = self.check_int('num_layers', arch['num_layers'])
        self.num_heads = self.check_heads(self.embed_dims, arch['num_heads'])
        self.vocab_size = self.check_int('vocab_size', vocab_size)
        self.head_dim = self.embed_dims // self.num_heads
        if self.head_dim % 2:
            raise ValueError(f'LLaMADecoder: head_dim {self.head_dim} (embed_dims / num_heads) must '
                             'be even for RoPE.')
        self.init_std = float(init_std)
        self.with_cp = with_cp
        self.frozen_stages = self.check_int('frozen_stages', frozen_stages, minimum=-1)
        if self.frozen_stages > self.num_layers:
            raise ValueError(f'LLaMADecoder: frozen_stages {frozen_stages} > num_layers '
                             f'{self.num_layers}.')

        attn = partial(Attention, num_heads=self.num_heads, qkv_bias=False, proj_bias=False,
                       layout='llama')
        mlp = partial(SwiGLUFFN, hidden_dims=self.feedforward_channels, bias=False,
                      layout='llama')
        norm = partial(RMSNorm, eps=norm_eps)
        blocks = [
            TransformerBlock(self.embed_dims, attn, mlp, norm_layer=norm,
                             part_names=LLAMA_PART_NAMES) for _ in range(self.num_layers)
        ]
        self.model = _LlamaModel(self.vocab_size, self.embed_dims, blocks, norm_eps)
        self.lm_head = (nn.Linear(self.embed_dims, self.vocab_size, bias=False)
                        if with_head else None)
        self.rope = RotaryEmbedding(self.head_dim, theta=rope_theta, ndim=1, pairing='half')
        self.num_layer_ids = self.num_layers + 2
        self._init_normal()
        self._freeze_stages()

    def _init_normal(self) -> None:
        """N(0, init_std) for every Linear and the embedding, ones for the norms (EasyLM)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.init_std)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)

    @classmethod
    def num_params(cls, arch, vocab_size: int = 8292, with_head: bool = True) -> int:
        """Parameter count of an arch without building it: per block 4C^2 + 3CI + 2C, plus
        the embedding, the final norm and the head."""
        a = cls.parse_arch(arch)
        c, i, n = a['embed_dims'], a['feedforward_channels'], a['num_layers']
        return n * (4 * c * c + 3 * c * i + 2 * c) + vocab_size * c * (2 if with_head else 1) + c

    # ----------------------------------------------------------------------------- forward
    def new_caches(self, capacity: Optional[int] = None) -> List[KVCache]:
        """One empty :class:`KVCache` per block, for incremental decoding; ``capacity`` (the
        final sequence length, if known) preallocates their buffers, which keeps every decoding
        step at one shape (what a compiled decoder needs to reuse one graph)."""
        return [KVCache(capacity) for _ in range(self.num_layers)]

    def forward(self, input_ids: torch.Tensor,
                caches: Optional[Sequence[KVCache]] = None) -> torch.Tensor:
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(f'LLaMADecoder: expected token ids (B, L) of an integer dtype, got '
                             f'{input_ids.dtype} of shape {tuple(input_ids.shape)}.')
        if caches is not None and len(caches) != self.num_layers:
            raise ValueError(f'LLaMADecoder: got {len(caches)} caches for {self.num_layers} '
                             'blocks; make them with new_caches().')
        B, L = input_ids.shape
        if L == 0:
            raise ValueError('LLaMADecoder: got an empty sequence (L = 0).')
        # a tensor once the caches hold keys: no Python int of the position enters the forward
        offset = caches[0].offset() if caches is not None else 0
        rope = self.rope(L, offset=offset, device=input_ids.device)
        x = self.model.embed_tokens(input_ids)
        for i, block in enumerate(self.model.layers):
            if caches is None:
                x = self.run_block(block, x, rope=rope, is_causal=True)
            else:
                x = block(x, rope=rope, is_causal=True, cache=caches[i])
        x = self.model.norm(x)
        return self.lm_head(x) if self.lm_head is not None else x

    # ------------------------------------------------------------------------- freezing etc.
    def frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.model.embed_tokens, *self.model.layers[:self.frozen_stages]]

    def layer_id(self, name: str) -> Optional[int]:
        if name.startswith('model.embed_tokens'):
            return 0
        if name.startswith('model.layers.'):
            return int(name.split('.')[2]) + 1
        return None
