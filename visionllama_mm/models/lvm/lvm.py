"""LVM: next-token prediction over visual sentences (Bai et al. 2023).

A visual sentence is a run of images, each turned into ``T = (H/f)(W/f)`` VQ codes by the frozen
tokenizer (256 for the released 256 px / f16 tokenizer). :class:`LVM` trains a causal
:class:`~visionllama_mm.models.backbones.LLaMADecoder` on the codes with the next-token
cross-entropy, scores perplexity and samples new images.

Inputs ``LVM.forward`` takes (``inputs`` after :class:`LVMDataPreprocessor`):

* token windows ``LongTensor (B, L + 1)`` (pre-tokenized streams, EasyLM's packing: input
  ``[:, :-1]``, target ``[:, 1:]``, sentences cross rows, no reset);
* pre-tokenized sentences of different lengths: a list of ``LongTensor`` (right-padded with
  ``pad_id``; padded targets are not scored);
* image sentences ``FloatTensor (B, N, 3, H, W)`` in [0, 1] (or a list of (N_i, 3, H, W)),
  tokenized on the fly: for training ``[BOS] codes [EOS]`` per sentence (``add_bos_eos``), for
  perplexity the bare codes as the official evaluation does (no BOS).
"""
import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor, BaseModel
from mmengine.structures import BaseDataElement
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

from ...engine.pretrained import PretrainedInitMixin
from ...registry import MODELS

__all__ = ['LVM', 'LVMDataPreprocessor', 'sample_next_token']


@MODELS.register_module()
class LVMDataPreprocessor(BaseDataPreprocessor):
    """Moves a collated batch to the device and stacks what can be stacked.

    ``inputs`` may be a (B, L + 1) tensor (``default_collate`` of token windows) or a list of
    tensors (``pseudo_collate``): token windows / image sentences of one shape are stacked, others
    stay a list for :class:`LVM` to pad.
    """

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            if len(inputs) == 0:
                raise ValueError('LVMDataPreprocessor: got an empty batch.')
            if all(t.shape == inputs[0].shape for t in inputs):
                inputs = torch.stack(list(inputs))
            else:
                inputs = list(inputs)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 50,
                      top_p: float = 1.0, allowed: Optional[int] = None,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Sample one id per row of ``logits`` (B, V) -> (B,).

    In the order of transformers' ``generate``: ids >= ``allowed`` suppressed (the
    codes-only constraint), then temperature, top-k, top-p. ``temperature=0`` is greedy.
    """
    logits = logits.float()
    if allowed is not None:
        logits[:, allowed:] = float('-inf')
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float('-inf'))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1)  # ascending, as transformers' TopPLogitsWarper
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= 1 - top_p
        drop[:, -1] = False  # always keep the most likely id
        logits = logits.masked_fill(drop.scatter(1, order, drop), float('-inf'))
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@MODELS.register_module()
class LVM(PretrainedInitMixin, BaseModel):
    """Large Vision Model: a causal LLaMA over visual tokens.

    Args:
        backbone: The decoder config (``type='LLaMADecoder'``, with its head).
        tokenizer: Optional frozen tokenizer config (``type='VQGANTokenizer'``); needed for image
            inputs and :meth:`generate_images`, not for pre-tokenized streams.
        num_codes: Size of the VQ codebook; ids >= ``num_codes`` are special.
        bos_id, eos_id, pad_id: Special ids (our choice: 8192 / 8193 / 8194; the release does not
            say which reserved ids it used).
        add_bos_eos: Wrap each image sentence in BOS/EOS for training (as the paper describes).
        loss_norm: ``'token'``: mean over every scored token of the batch (default); ``'row'``:
            mean within each row, then over rows (EasyLM, the released training).
        log_accuracy: Also return the next-token accuracy (an extra pass over the logits).
        data_preprocessor: Default :class:`LVMDataPreprocessor`.
        init_cfg: mmengine init config.

    Modes of ``forward(inputs, data_samples=None, mode)``: ``'loss'`` -> ``{'loss'}`` (and ``'accuracy'``);
    ``'tensor'`` -> logits (B, L, V) of the input tokens; ``'predict'`` -> one data sample per
    sequence with ``nll`` (sum over the scored tokens), ``num_tokens`` and ``ppl`` (exp of their
    mean). Scored tokens: the ``num_target_images`` last images when a data sample gives it (the
    official perplexity protocol), else every non-pad target.
    """

    def __init__(self,
                 backbone: dict,
                 tokenizer: Optional[dict] = None,
                 num_codes: int = 8192,
                 bos_id: int = 8192,
                 eos_id: int = 8193,
                 pad_id: int = 8194,
                 add_bos_eos: bool = True,
                 loss_norm: str = 'token',
                 log_accuracy: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='LVMDataPreprocessor')
        if isinstance(data_preprocessor, dict):  # found without a default scope too
            data_preprocessor = MMPRETRAIN_MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if loss_norm not in ('token', 'row'):
            raise ValueError(f'LVM: loss_norm must be "token" or "row", got {loss_norm!r}.')
        self.backbone = MMPRETRAIN_MODELS.build(backbone) if isinstance(backbone, dict) else backbone
        vocab = getattr(self.backbone, 'vocab_size', None)
        for name, i in (('bos_id', bos_id), ('eos_id', eos_id), ('pad_id', pad_id)):
            if not num_codes <= i < (vocab or i + 1):
                raise ValueError(f'LVM: {name} {i} must lie in [num_codes, vocab_size) = '
                                 f'[{num_codes}, {vocab}): ids below num_codes are VQ codes.')
        if len({bos_id, eos_id, pad_id}) < 3:
            # targets equal to pad_id are not scored: a shared id drops every bos/eos target
            raise ValueError(f'LVM: bos_id, eos_id and pad_id must differ, got {bos_id}, {eos_id}, '
                             f'{pad_id} (targets equal to pad_id are left out of the loss).')
        self.tokenizer = None
        if tokenizer is not None:
            self.tokenizer = MMPRETRAIN_MODELS.build(tokenizer) if isinstance(tokenizer, dict) else tokenizer
            if self.tokenizer.num_embeddings != num_codes:
                raise ValueError(f'LVM: the tokenizer has {self.tokenizer.num_embeddings} codes '
                                 f'but num_codes is {num_codes}.')
        self.num_codes = num_codes
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.add_bos_eos = add_bos_eos
        self.loss_norm = loss_norm
        self.log_accuracy = log_accuracy

    # ------------------------------------------------------------------------------- tokens
    @torch.no_grad()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, N, 3, H, W) in [0, 1] -> codes (B, N * T), each image on its own."""
        if self.tokenizer is None:
            raise ValueError('LVM: image inputs need a tokenizer; set model.tokenizer or feed '
                             'pre-tokenized token windows.')
        if images.dim() != 5:
            raise ValueError(f'LVM: expected image sentences (B, N, 3, H, W), got shape '
                             f'{tuple(images.shape)}.')
        B, N = images.shape[:2]
        return self.tokenizer.encode(images.flatten(0, 1)).view(B, -1)

    def _sequences(self, inputs, data_samples, wrap: bool):
        """-> (ids (B, L) long, scored (B, L - 1) bool over the targets ``ids[:, 1:]``)."""
        if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
            inputs = [inputs[i] for i in range(inputs.shape[0])] if inputs.dim() == 5 else inputs
        if isinstance(inputs, torch.Tensor):
            if inputs.dim() != 2:
                raise ValueError(f'LVM: expected token windows (B, L + 1), got shape '
                                 f'{tuple(inputs.shape)}.')
            ids = inputs.long()
            lengths = [ids.shape[1]] * ids.shape[0]
        else:
            seqs = []
            for x in inputs:
                if x.is_floating_point():
                    codes = self.tokenize(x[None])[0]
                    if wrap:
                        codes = torch.cat([codes.new_tensor([self.bos_id]), codes,
                                           codes.new_tensor([self.eos_id])])
                    seqs.append(codes)
                else:
                    seqs.append(x.long().flatten())
            lengths = [len(s) for s in seqs]
            ids = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=self.pad_id)
        if min(lengths) < 2:
            raise ValueError('LVM: every sequence needs at least 2 tokens (an input and a target).')
        targets = ids[:, 1:]
        scored = targets != self.pad_id
        pos = torch.arange(targets.shape[1], device=ids.device)
        for i, sample in enumerate(data_samples or []):
            k = sample.metainfo.get('num_target_images', 0) if sample is not None else 0
            n_target = sample.metainfo.get('num_target_tokens', 0) if sample is not None else 0
            if k and not n_target:
                n_target = k * (lengths[i] // sample.metainfo['num_images'])
            if n_target:
                if n_target >= lengths[i]:
                    raise ValueError(f'LVM: {n_target} target tokens leave no context in a '
                                     f'sequence of {lengths[i]}.')
                scored[i] &= pos >= lengths[i] - n_target - 1
        return ids, scored

    def _token_nll(self, inputs, data_samples, wrap: bool, reduce: bool = False):
        """-> ids, logits, and either the summed NLL of the scored tokens (``reduce``) or the
        per-token NLL (B, L - 1) (zero where not scored), and the scored mask."""
        ids, scored = self._sequences(inputs, data_samples, wrap)
        logits = self.backbone(ids[:, :-1])
        targets = ids[:, 1:].masked_fill(~scored, -100)
        nll = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100,
                              reduction='sum' if reduce else 'none')
        return ids, logits, nll if reduce else nll.view_as(scored), scored

    # ------------------------------------------------------------------------------ forward
    def forward(self, inputs, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            ids, _ = self._sequences(inputs, None, wrap=False)
            return self.backbone(ids)
        raise ValueError(f'LVM: invalid mode {mode!r}; expected "loss", "predict" or "tensor".')

    def loss(self, inputs, data_samples=None) -> Dict[str, torch.Tensor]:
        row = self.loss_norm == 'row'
        ids, logits, nll, scored = self._token_nll(inputs, data_samples, wrap=self.add_bos_eos,
                                                   reduce=not row)
        counts = scored.sum(-1)
        if row:
            # the mean over rows with a scored token, as a masked sum (no data-dependent shape)
            rows = counts > 0
            per_row = nll.sum(-1) / counts.clamp(min=1)
            loss = (per_row * rows).sum() / rows.sum().clamp(min=1)
        else:
            loss = nll / counts.sum().clamp(min=1)
        losses = dict(loss=loss)
        if self.log_accuracy:
            with torch.no_grad():
                hit = (logits.argmax(-1) == ids[:, 1:]) & scored
                losses['accuracy'] = hit.sum().float() / counts.sum().clamp(min=1)
        return losses

    @torch.no_grad()
    def predict(self, inputs, data_samples=None) -> List[BaseDataElement]:
        _, _, nll, scored = self._token_nll(inputs, data_samples, wrap=False)
        n = scored.sum(-1)
        total = nll.sum(-1)
        out = []
        for i in range(len(n)):
            sample = (data_samples[i] if data_samples is not None and data_samples[i] is not None
                      else BaseDataElement())
            sample.set_data(dict(nll=float(total[i]), num_tokens=int(n[i]),
                                 ppl=math.exp(float(total[i]) / max(int(n[i]), 1))))
            out.append(sample)
        return out

    # --------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, prompt_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int = 50, top_p: float = 1.0, codes_only: bool = True,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Sample exactly ``max_new_tokens`` ids after ``prompt_ids`` (B, S) -> (B, max_new_tokens).

        The prompt is run once and every further token reuses the KV cache. No id ends the
        sampling early (the released generation config's EOS id 2 is a VQ code);
        ``codes_only`` suppresses the special ids >= ``num_codes``.
        """
        if prompt_ids.dim() != 2 or prompt_ids.shape[1] == 0:
            raise ValueError(f'LVM.generate: expected prompt ids (B, S) with S >= 1, got shape '
                             f'{tuple(prompt_ids.shape)}.')
        if max_new_tokens < 1:
            raise ValueError(f'LVM.generate: max_new_tokens must be >= 1, got {max_new_tokens}.')
        if not (temperature >= 0 and (top_k or 0) >= 0 and 0 < top_p <= 1):
            raise ValueError(f'LVM.generate: expected temperature >= 0 (0: greedy), top_k >= 0 (0: '
                             f'no top-k) and top_p in (0, 1]; got temperature={temperature}, '
                             f'top_k={top_k}, top_p={top_p}.')
        caches = self.backbone.new_caches(capacity=prompt_ids.shape[1] + max_new_tokens)
        logits = self.backbone(prompt_ids.long(), caches)[:, -1]
        allowed = self.num_codes if codes_only else None
        out = []
        for step in range(max_new_tokens):
            nxt = sample_next_token(logits, temperature, top_k, top_p, allowed, generator)
            out.append(nxt)
            if step + 1 < max_new_tokens:
                logits = self.backbone(nxt[:, None], caches)[:, -1]
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def generate_images(self, prompt_images: torch.Tensor, num_new_images: int = 1,
                        context_images: int = 16, **sampling) -> torch.Tensor:
        """Continue a visual sentence: prompt images (B, N, 3, H, W) in [0, 1] -> the new images
        (B, num_new_images, 3, H, W), as the official inference does: no BOS, at
        most ``context_images - 1`` images of context, the first call fills the window, each
        further image is sampled alone with a sliding window."""
        if self.tokenizer is None:
            raise ValueError('LVM.generate_images needs a tokenizer (model.tokenizer).')
        B, N, _, H, W = prompt_images.shape
        if context_images < 2:
            raise ValueError(f'LVM.generate_images: context_images must be >= 2 (the window holds '
                             f'context_images - 1 prompt images, here of {N}, and the image being '
                             f'generated), got {context_images}.')
        if num_new_images < 1:
            raise ValueError(f'LVM.generate_images: num_new_images must be >= 1, got '
                             f'{num_new_images}.')
        per_image = self.tokenizer.tokens_per_image((H, W)) if callable(
            getattr(self.tokenizer, 'tokens_per_image', None)) else None
        tokens = self.tokenize(prompt_images)
        per_image = per_image or tokens.shape[1] // N
        window = (context_images - 1) * per_image
        tokens = tokens[:, -window:]
        made = 0
        new = []
        while made < num_new_images:
            ctx_imgs = tokens.shape[1] // per_image
            n = max(1, min(num_new_images - made, context_images - ctx_imgs)) if made == 0 else 1
            ids = self.generate(tokens, n * per_image, **sampling)
            new.append(ids)
            tokens = torch.cat([tokens, ids], dim=1)[:, -window:]
            made += n
        ids = torch.cat(new, dim=1).view(B * num_new_images, per_image)
        grid = (H // self.tokenizer.downsample_factor, W // self.tokenizer.downsample_factor)
        imgs = self.tokenizer.decode(ids, hw=grid)
        return imgs.view(B, num_new_images, *imgs.shape[1:])
