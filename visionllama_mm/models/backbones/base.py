"""What every backbone of the package shares: arch parsing, argument checks, the drop-path
schedule, freezing, the activation-checkpointed block runner and layer-wise lr-decay ids.

Subclasses set ``arch_zoo`` / ``arch_keys``, list what to freeze in :meth:`frozen_modules` and
number their parameters in :meth:`layer_id` (``num_layer_ids`` in all).
"""
import numbers
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from ...engine.pretrained import PretrainedInitMixin
from ..utils import checkpoint_call, parse_arch

__all__ = ['VisionBackbone', 'drop_path_rates']


def drop_path_rates(rate: float, depth: int, schedule: str = 'linear') -> List[float]:
    """Per-block stochastic-depth rates.

    ``'linear'``: 0 -> ``rate`` over the blocks (mmpretrain / Twins); ``'uniform'``: ``rate`` in
    every block (DeiT III, the supervised VisionLLaMA).
    """
    if schedule == 'linear':
        return [rate * i / max(depth - 1, 1) for i in range(depth)]
    if schedule == 'uniform':
        return [float(rate)] * depth
    raise ValueError(f'drop_path_schedule must be "linear" or "uniform", got {schedule!r}.')


class VisionBackbone(PretrainedInitMixin, BaseBackbone):
    """mmpretrain's ``BaseBackbone`` plus the concerns every backbone here shares.

    Attributes set by subclasses:
        arch_zoo: ``{name: settings}``; short and long aliases map to the same dict.
        arch_keys: Keys a custom ``arch`` dict must have.
        arch_optional: Keys it may have (a dict gives their defaults).
        arch_aliases: ``{old key: new key}`` of renamed arch keys (deprecated, still read).
        with_cp: Activation checkpointing of every block (used by :meth:`run_block`).
        frozen_stages: Read by :meth:`frozen_modules`.
    """

    arch_zoo: Dict[str, dict] = {}
    arch_keys: Tuple[str, ...] = ()
    arch_optional: Union[Tuple[str, ...], Dict[str, object]] = ()
    arch_aliases: Dict[str, str] = {}
    with_cp: bool = False
    frozen_stages: int = -1

    # ------------------------------------------------------------------------- construction
    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """An arch name of ``arch_zoo`` (case-insensitive) or a dict with ``arch_keys`` (and any
        of ``arch_optional``); see :func:`~visionllama_mm.models.utils.parse_arch`."""
        return parse_arch(arch, cls.arch_zoo, required=cls.arch_keys,
                          optional=cls.arch_optional, aliases=cls.arch_aliases, owner=cls.__name__)

    def check_rate(self, name: str, value: float) -> float:
        """A probability-like rate (dropout, drop path) must lie in [0, 1)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise ValueError(f'{type(self).__name__}: {name} must be in [0, 1), got {value!r}.')
        return float(value)

    def check_int(self, name: str, value, minimum: int = 1) -> int:
        """A count or size (heads, patch, window) must be an int >= ``minimum``."""
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f'{type(self).__name__}: {name} must be an int >= {minimum}, '
                             f'got {value!r}.')
        return value

    def check_heads(self, embed_dims: int, num_heads, where: str = '') -> int:
        self.check_int(f'num_heads{where}', num_heads)
        if embed_dims % num_heads:
            raise ValueError(f'{type(self).__name__}: embed_dims {embed_dims}{where} is not '
                             f'divisible by num_heads {num_heads}.')
        return num_heads

    def check_choice(self, name: str, value, choices: Sequence):
        if value not in choices:
            raise ValueError(f'{type(self).__name__}: {name} must be one of {tuple(choices)}, '
                             f'got {value!r}.')
        return value

    def check_rope_ratio(self, ratio: float, head_dims: Iterable[int]) -> float:
        """``rope_ratio`` in (0, 1] with ``ratio * head_dim`` a multiple of 4 for every head."""
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0 < ratio <= 1:
            raise ValueError(f'{type(self).__name__}: rope_ratio must be in (0, 1], '
                             f'got {ratio!r}.')
        for hd in head_dims:
            d_r = int(hd * ratio)
            if d_r <= 0 or d_r % 4:
                raise ValueError(f'{type(self).__name__}: rope_ratio {ratio} x head_dim {hd} = '
                                 f'{d_r} rotated channels; it must be a positive multiple of 4.')
        return float(ratio)

    @staticmethod
    def check_batch(x: torch.Tensor, owner: str) -> None:
        if x.dim() != 4:
            raise ValueError(f'{owner}: expected an image batch (B, C, H, W), got shape '
                             f'{tuple(x.shape)}.')
        if x.shape[0] == 0:
            raise ValueError(f'{owner}: got an empty batch (shape {tuple(x.shape)}); the data '
                             'loader or the caller produced no images.')

    # ------------------------------------------------------------------------------ forward
    def run_block(self, block: nn.Module, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``block(x, *args, **kwargs)``, activation-checkpointed when ``with_cp`` is on and the
        forward needs gradients."""
        return checkpoint_call(block, x, *args, enabled=self.with_cp and self.training, **kwargs)

    # ------------------------------------------------------------------------------ freezing
    def frozen_modules(self) -> List[nn.Module]:
        """Modules (and parameters) that ``frozen_stages`` freezes; none by default."""
        return []

    def _freeze_stages(self) -> None:
        for m in self.frozen_modules():
            if isinstance(m, nn.Parameter):
                m.requires_grad = False
                continue
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------------- layer decay
    num_layer_ids: int = 0

    def layer_id(self, name: str) -> Optional[int]:
        """Layer id of a backbone parameter name (without prefix); ``None``: the last id."""
        raise NotImplementedError

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """``(layer_id, num_layer_ids)`` for layer-wise lr decay, as mmpretrain numbers them:
        parameters outside the backbone (neck, heads) and unnumbered ones get the last id."""
        last = self.num_layer_ids - 1
        if not param_name.startswith(prefix):
            return last, self.num_layer_ids
        i = self.layer_id(param_name[len(prefix):])
        return (last if i is None else i), self.num_layer_ids
