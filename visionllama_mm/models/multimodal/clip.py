"""Contrastive image-text training (CLIP, Radford et al. 2021) with Locked-Text Tuning (ViTamin,
Chen et al. 2024) and zero-shot classification, on mmengine.

- :class:`CLIPTextTransformer`: OpenCLIP's text tower (token + learned position embedding, causal
  pre-norm blocks, final LayerNorm, the end-of-text token's features times ``text_projection``)
  built from the package's shared :class:`TransformerBlock` / :class:`Attention` (SDPA, causal).
  Its MLP uses exact GELU as every ViTamin text tower does; ``act='quick_gelu'`` gives OpenAI's.
  mmpretrain's ``CLIPTransformer`` hard-codes QuickGELU, so it cannot serve here.
- :class:`CLIPTokenizer`: the BPE tokenizer shipped inside ``open_clip_torch`` (offline).
- :class:`ContrastiveCLIP`: image tower (any registered backbone whose last output is a (B, D)
  vector) + bias-free projection, text tower, learnable logit scale clamped at 100, symmetric
  InfoNCE over the features of all ranks (gradients through the local shard), text locking for
  LTT, zero-shot classification in ``predict`` mode, and image-text retrieval through
  mmpretrain's retrieval interface (``extract_feat`` / ``predict_all``).

Why not mmpretrain's ``CLIP`` / ``CLIPZeroShot``: they have no loss mode, build the QuickGELU
tower, need an HF tokenizer from the hub, and (without ``transformers`` installed) cannot even be
imported. The class names are mmpretrain's ``IMAGENET_SIMPLE_CATEGORIES``; the 80 OpenAI templates
come from ``open_clip`` (mmpretrain's identical copy lives in its multimodal package, which needs
``transformers``).
"""
import math
from contextlib import nullcontext
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_gather, get_dist_info
from mmengine.logging import MMLogger
from mmengine.model import BaseModel, BaseModule
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample
from timm.layers import Mlp, QuickGELU

from ...engine.pretrained import PretrainedInitMixin, load_checkpoint_source, split_pretrained
from ...registry import MODELS
from ..layers import Attention, TransformerBlock
from ..utils import checkpoint_call, renamed_arg, warn_deprecated

__all__ = ['CLIPTextTransformer', 'CLIPTokenizer', 'ContrastiveCLIP', 'zero_shot_prompts']


class CLIPTokenizer:
    """OpenAI's CLIP BPE (49,408 tokens; the file ships inside ``open_clip_torch``).

    ``tokenizer(texts) -> (N, context_length)`` int64: start-of-text, tokens, end-of-text (truncated
    to fit, keeping end-of-text), zero padding. Lower-cases and cleans whitespace as OpenCLIP does.
    """

    def __init__(self, context_length: int = 77):
        from open_clip.tokenizer import SimpleTokenizer
        if context_length < 3:
            raise ValueError(f'CLIPTokenizer: context_length must be >= 3, got {context_length}.')
        self.context_length = context_length
        self._tokenizer = SimpleTokenizer(context_length=context_length)
        self.vocab_size = len(self._tokenizer.encoder)
        self.eot_token_id = self._tokenizer.eot_token_id

    def __call__(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        return self._tokenizer(list(texts), context_length=self.context_length)

    def num_tokens(self, texts: Sequence[str]) -> List[int]:
        """Untruncated lengths (start-of-text and end-of-text included): a text longer than
        ``context_length`` loses its last tokens in :meth:`__call__`."""
        return [len(self._tokenizer.encode(t)) + 2 for t in texts]


@MODELS.register_module()
class CLIPTextTransformer(PretrainedInitMixin, BaseModule):
    """OpenCLIP's text encoder on the package's shared blocks.

    Args:
        embed_dims: Token channels C (OpenCLIP's ``width``).
        proj_dims: Output (joint embedding) dims E, the width of ``text_projection`` (OpenCLIP's
            ``embed_dim``, mmpretrain CLIP's ``proj_dim``); default ``embed_dims``.
        num_layers: Blocks.
        num_heads: Attention heads.
        context_length: Longest token sequence (the positional table's length).
        vocab_size: Token embedding rows (49,408 for the CLIP BPE).
        feedforward_channels: MLP hidden width; default ``4 * embed_dims``.
        act: ``'gelu'`` (OpenCLIP / ViTamin) or ``'quick_gelu'`` (OpenAI's models).
        norm_eps: LayerNorm epsilon (1e-5, torch's default, as OpenCLIP).
        with_cp: Activation checkpointing of every block.
        width, mlp_ratio: Deprecated (read for one more release, with a warning). The old
            arguments named the token channels ``width`` and the output dims ``embed_dims``:
            a call that gives ``width`` is read the old way (``width`` -> ``embed_dims``,
            ``embed_dims`` -> ``proj_dims``). ``mlp_ratio`` gives
            ``feedforward_channels = mlp_ratio * embed_dims``.

    Shapes:
        tokens (B, L) int64 with L <= context_length, end-of-text the largest id of each row
        -> (B, proj_dims) (not normalised).
    """

    ACTS = {'gelu': nn.GELU, 'quick_gelu': QuickGELU}
    deprecated_names = ('width', 'mlp_ratio')  # old argument names still read

    def __init__(self, embed_dims: int = 512, proj_dims: Optional[int] = None,
                 num_layers: int = 12, num_heads: int = 8, context_length: int = 77,
                 vocab_size: int = 49408, feedforward_channels: Optional[int] = None,
                 act: str = 'gelu', norm_eps: float = 1e-5, with_cp: bool = False,
                 init_cfg: Optional[dict] = None, width: Optional[int] = None,
                 mlp_ratio: Optional[float] = None):
        super().__init__(init_cfg=init_cfg)
        if width is not None:  # the old names: width = token channels, embed_dims = output
            if proj_dims is not None:
                raise ValueError('CLIPTextTransformer: got both width (deprecated) and '
                                 'proj_dims; give embed_dims (the token channels) and proj_dims '
                                 '(the output dims) only.')
            warn_deprecated(f'CLIPTextTransformer: width={width}, embed_dims={embed_dims} are '
                            'the deprecated names (removed in the next release); the token '
                            f'channels are now embed_dims and the output dims proj_dims: use '
                            f'embed_dims={width}, proj_dims={embed_dims}.')
            embed_dims, proj_dims = width, embed_dims
        ratio = renamed_arg('CLIPTextTransformer', 'mlp_ratio', mlp_ratio,
                            'feedforward_channels', feedforward_channels)
        if mlp_ratio is not None:
            feedforward_channels = int(embed_dims * ratio)
        if act not in self.ACTS:
            raise ValueError(f'CLIPTextTransformer: act must be one of {sorted(self.ACTS)}, '
                             f'got {act!r}.')
        if embed_dims % num_heads:
            raise ValueError(f'CLIPTextTransformer: embed_dims {embed_dims} is not divisible by '
                             f'num_heads {num_heads}.')
        self.embed_dims, self.num_layers = embed_dims, num_layers
        self.proj_dims = embed_dims if proj_dims is None else proj_dims
        self.feedforward_channels = (4 * embed_dims if feedforward_channels is None
                                     else feedforward_channels)
        self.context_length = context_length
        self.with_cp = with_cp
        self.token_embedding = nn.Embedding(vocab_size, embed_dims)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, embed_dims))
        norm = partial(nn.LayerNorm, eps=norm_eps)
        attn = partial(Attention, num_heads=num_heads)
        mlp = partial(Mlp, hidden_features=self.feedforward_channels, act_layer=self.ACTS[act])
        self.blocks = nn.ModuleList(
            [TransformerBlock(embed_dims, attn, mlp, norm_layer=norm) for _ in range(num_layers)])
        self.ln_final = norm(embed_dims)
        self.text_projection = nn.Parameter(torch.empty(embed_dims, self.proj_dims))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenCLIP's initialisation (its ``transformer.py``): embeddings N(0, .02) / N(0, .01),
        attention in-projection N(0, W^-1/2), output projections N(0, W^-1/2 (2L)^-1/2), MLP
        input N(0, (2W)^-1/2), text projection N(0, W^-1/2); biases zero, LayerNorms (1, 0)."""
        w, proj_std = self.embed_dims, self.embed_dims ** -0.5 * (2 * self.num_layers) ** -0.5
        nn.init.normal_(self.token_embedding.weight, std=.02)
        nn.init.normal_(self.positional_embedding, std=.01)
        for block in self.blocks:
            for linear, std in ((block.attn.qkv, w ** -0.5), (block.attn.proj, proj_std),
                                (block.ffn.fc1, (2 * w) ** -0.5), (block.ffn.fc2, proj_std)):
                nn.init.normal_(linear.weight, std=std)
                nn.init.zeros_(linear.bias)
        nn.init.normal_(self.text_projection, std=w ** -0.5)

    def init_weights(self):
        if self.init_cfg is None:
            self.reset_parameters()  # keeps OpenCLIP's scheme under BaseModel.init_weights
        else:
            super().init_weights()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] > self.context_length:
            raise ValueError(f'CLIPTextTransformer: expected token ids (B, L) with L <= '
                             f'{self.context_length}, got shape {tuple(tokens.shape)}.')
        L = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:L]
        for block in self.blocks:
            x = checkpoint_call(block, x, is_causal=True, enabled=self.with_cp and self.training)
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        return eot @ self.text_projection


def zero_shot_prompts(classes: Union[str, Sequence[str]],
                      templates: Union[str, Sequence[str]]) -> Tuple[List[str], List]:
    """-> (class names, templates as callables) for :class:`ContrastiveCLIP`'s ``zero_shot``.

    ``classes``: ``'imagenet'`` (mmpretrain's ``IMAGENET_SIMPLE_CATEGORIES`` = OpenAI's curated
    names) or a list. ``templates``: ``'openai_imagenet'`` (the 80 OpenAI templates) or a list of
    format strings with one ``{}``.
    """
    if isinstance(classes, str):
        if classes != 'imagenet':
            raise ValueError(f"zero_shot classes must be 'imagenet' or a list of names, "
                             f'got {classes!r}.')
        from mmpretrain.datasets.categories import IMAGENET_SIMPLE_CATEGORIES
        classes = IMAGENET_SIMPLE_CATEGORIES
    if isinstance(templates, str):
        if templates != 'openai_imagenet':
            raise ValueError(f"zero_shot templates must be 'openai_imagenet' or a list of format "
                             f'strings with one {{}}, got {templates!r}.')
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
        templates = list(OPENAI_IMAGENET_TEMPLATES)
    else:
        bad = [t for t in templates if not isinstance(t, str) or t.count('{}') != 1]
        if bad or not templates:
            raise ValueError('zero_shot templates must be format strings with exactly one {} '
                             f'(e.g. "a photo of a {{}}."), got {bad or templates!r}.')
        templates = [t.format for t in templates]
    if not classes:
        raise ValueError('zero_shot classes is empty.')
    return list(classes), templates


def _gather(x: torch.Tensor, with_grad: bool) -> torch.Tensor:
    """Features of every rank stacked in rank order. ``with_grad=False`` (OpenCLIP's default):
    only this rank's rows carry gradients, every feature's gradient is computed on the rank that
    owns it. ``with_grad=True`` (``--gather-with-grad``): the gather is differentiable (its
    backward sums the gradients of each rank's rows back to their owner)."""
    rank, world = get_dist_info()
    if world == 1:
        return x
    if with_grad:
        import torch.distributed.nn.functional as dist_fn
        return torch.cat(dist_fn.all_gather(x), dim=0)
    parts = all_gather(x.detach())
    parts[rank] = x
    return torch.cat(parts, dim=0)


@MODELS.register_module()
class ContrastiveCLIP(PretrainedInitMixin, BaseModel):
    """CLIP trained contrastively, optionally against a locked text tower (LTT).

    Args:
        vision_backbone: Image tower config; its last output must be (B, D) (e.g. ``ViTamin``
            with the default ``out_type='avg_featmap'``).
        text_encoder: Text tower config (``CLIPTextTransformer``); its ``proj_dims`` is the
            joint embedding size E.
        vision_dims: D, the image tower's output width (default: its ``embed_dims``).
        context_length: Tokens per caption (77 for the released models).
        init_logit_scale: Initial ``logit_scale`` (a log temperature): ln(1 / 0.07).
        max_logit_scale: ``exp(logit_scale)`` is clamped to this (100) before every use, as
            OpenCLIP clamps it after every step.
        text_checkpoint: A checkpoint whose text tower (and ``logit_scale``) is loaded by
            :meth:`init_weights`: this package's CLIP checkpoint (``text.*``) or a released
            OpenCLIP one (converted on the fly). ``text_projection`` is kept from the model when
            its shape differs, as the official ``--pretrained-text`` does.
        lock_text: Freeze the whole text tower (LTT, ``--lock-text``): no gradients, no weight
            updates, evaluated without autograd and kept in eval mode.
        local_loss: Each rank scores only its own samples against the global batch (OpenCLIP's
            ``--local-loss``, set by the authors' configs): (B_local x B_global) logits instead
            of the full (B_global x B_global) on every rank, which a global batch of 90k could
            not hold. Use it with ``gather_with_grad=True`` for the exact gradient.
        gather_with_grad: Differentiable all-gather (OpenCLIP's ``--gather-with-grad``).
        zero_shot: ``dict(classes=..., templates=...)`` for ``predict`` mode (see
            :func:`zero_shot_prompts`); ``None``: ``predict`` is unavailable.
        data_preprocessor: Image preprocessor (default ``ClsDataPreprocessor``).

    Data: each ``DataSample`` carries ``text_tokens`` (int array of ``context_length``, from the
    ``TokenizeText`` transform) or ``text`` (a caption string, tokenized here) for ``loss``, and
    ``gt_label`` for zero-shot evaluation. For retrieval, ``text`` may be a list (the five
    captions of a COCO / Flickr30k test image) with ``gt_text_id`` / ``gt_image_id`` /
    ``image_id`` (what mmpretrain's ``COCORetrieval`` / ``Flickr30kRetrieval`` give in test mode).

    Modes:
        ``loss``: ``{'loss': symmetric InfoNCE, 'logit_scale': exp(scale)}`` over the global batch.
        ``tensor``: :meth:`extract_feat`'s dict: normalised ``image_feat`` (B, E) of the images,
            ``text_feat`` (T, E) of the captions, and their dataset ids where given.
        ``predict``: data samples with zero-shot ``pred_score`` / ``pred_label``.

    Retrieval: :meth:`extract_feat` and :meth:`predict_all` are the interface of mmpretrain's
    retrieval models, so its ``RetrievalTestLoop`` + ``RetrievalRecall`` evaluate image-text
    retrieval (the ``*_zeroshot-retrieval_*`` configs) and its ``TextToImageRetrievalInferencer``
    / ``ImageToTextRetrievalInferencer`` run on this model; both need a preprocessor that passes
    caption-only batches (``MultiModalDataPreprocessor``) and a test pipeline that packs
    ``text``.
    """

    def __init__(self,
                 vision_backbone: dict,
                 text_encoder: dict,
                 vision_dims: Optional[int] = None,
                 context_length: int = 77,
                 init_logit_scale: float = math.log(1 / 0.07),
                 max_logit_scale: float = 100.,
                 text_checkpoint: Optional[str] = None,
                 lock_text: bool = False,
                 local_loss: bool = False,
                 gather_with_grad: bool = False,
                 zero_shot: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='ClsDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MMPRETRAIN_MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.visual = MMPRETRAIN_MODELS.build(vision_backbone)
        text_encoder = dict(text_encoder)
        text_encoder.setdefault('context_length', context_length)
        if text_encoder['context_length'] != context_length:
            raise ValueError(f'ContrastiveCLIP: text_encoder.context_length '
                             f'{text_encoder["context_length"]} differs from context_length '
                             f'{context_length}.')
        self.text = MMPRETRAIN_MODELS.build(text_encoder)
        if vision_dims is None:
            vision_dims = getattr(self.visual, 'embed_dims', None)
            if not isinstance(vision_dims, int):
                raise ValueError('ContrastiveCLIP: give vision_dims (the image tower\'s output '
                                 f'width); {type(self.visual).__name__} has no int embed_dims.')
        self.embed_dims = self.text.proj_dims  # the joint embedding size E
        self.visual_proj = nn.Linear(vision_dims, self.embed_dims, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        if max_logit_scale <= 0:
            raise ValueError(f'ContrastiveCLIP: max_logit_scale must be > 0, got {max_logit_scale}.')
        self.max_log_scale = math.log(max_logit_scale)
        self.context_length = context_length
        self.text_checkpoint = text_checkpoint
        self.lock_text = lock_text
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self._tokenizer: Optional[CLIPTokenizer] = None
        self.zero_shot = None
        if zero_shot is not None:
            unknown = set(zero_shot) - {'classes', 'templates', 'batch_size'}
            if unknown:
                raise ValueError(f'ContrastiveCLIP: unknown zero_shot keys {sorted(unknown)}; '
                                 'valid: classes, templates, batch_size.')
            classes, templates = zero_shot_prompts(zero_shot.get('classes', 'imagenet'),
                                                   zero_shot.get('templates', 'openai_imagenet'))
            self.zero_shot = dict(classes=classes, templates=templates,
                                  batch_size=zero_shot.get('batch_size', 1000))
        self._class_embeds: Optional[torch.Tensor] = None
        self._batch_checked = False  # the first training batch is checked for a global batch of 1
        if lock_text:
            for p in self.text.parameters():
                p.requires_grad = False

    # ------------------------------------------------------------------------------- set-up
    @property
    def tokenizer(self) -> CLIPTokenizer:
        if self._tokenizer is None:
            self._tokenizer = CLIPTokenizer(self.context_length)
        return self._tokenizer

    def init_weights(self):
        super().init_weights()
        if not split_pretrained(self.init_cfg)[0]:  # a Pretrained init_cfg loaded it already
            nn.init.normal_(self.visual_proj.weight, std=self.visual_proj.in_features ** -0.5)
        if self.text_checkpoint is not None:
            self.load_text_tower(self.text_checkpoint)
        elif self.lock_text and self.init_cfg is None:
            raise ValueError('ContrastiveCLIP: lock_text=True but no text_checkpoint: the locked '
                             'text tower would stay randomly initialised. Give '
                             'model.text_checkpoint=<a CLIP checkpoint> (ours or OpenCLIP\'s).')

    def load_text_tower(self, filename: str) -> None:
        """Load ``text.*`` and ``logit_scale`` from ``filename`` (read with
        ``weights_only=True``); any other text key mismatch is an error naming the keys."""
        from .clip_convert import text_state_dict
        checkpoint = load_checkpoint_source(filename, map_location='cpu',
                                            what='ContrastiveCLIP text_checkpoint')
        state = text_state_dict(checkpoint, filename)
        own = self.text.state_dict()
        proj = state.get('text_projection')
        if proj is not None and proj.shape != own['text_projection'].shape:
            del state['text_projection']  # as the official --pretrained-text: keep ours
            MMLogger.get_current_instance().warning(
                f'ContrastiveCLIP: text_projection of {filename} has shape {tuple(proj.shape)}, '
                f'the model {tuple(own["text_projection"].shape)}; the model keeps its own.')
        scale = state.pop('logit_scale', None)
        missing = sorted(set(own) - set(state) - {'text_projection'})
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f'ContrastiveCLIP: the text tower in {filename} does not match the '
                           f'model: missing {missing[:8]}, unexpected {unexpected[:8]}.')
        bad = [k for k in state if state[k].shape != own[k].shape]
        if bad:
            raise ValueError(f'ContrastiveCLIP: text tower shapes in {filename} differ from the '
                             f'model: ' + ', '.join(f'{k} {tuple(state[k].shape)} vs '
                                                    f'{tuple(own[k].shape)}' for k in bad[:4]))
        self.text.load_state_dict(state, strict=False)
        if scale is not None:
            with torch.no_grad():
                self.logit_scale.copy_(scale)
        MMLogger.get_current_instance().info(
            f'ContrastiveCLIP: loaded the text tower ({len(state)} tensors) from {filename}'
            + (' and locked it' if self.lock_text else ''))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.lock_text:
            self.text.eval()
        return self

    # ------------------------------------------------------------------------------ features
    def extract_image_feat(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> L2-normalised (B, E), fp32 (normalised in fp32 under autocast too)."""
        return F.normalize(self.visual_proj(self.visual(images)[-1]).float(), dim=-1)

    def extract_text_feat(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> L2-normalised (B, E), fp32 (normalised in fp32 under autocast
        too)."""
        with torch.no_grad() if self.lock_text else nullcontext():
            return F.normalize(self.text(tokens).float(), dim=-1)

    def _captions(self, data_samples: Optional[Sequence[DataSample]],
                  device) -> Tuple[Optional[torch.Tensor], List[int]]:
        """Token ids (T, L) of every caption the samples carry, in order, and how many each
        sample carries: one (a training pair, an inferencer's query) or a list (the five of a
        COCO / Flickr30k test image). ``(None, [])`` when they carry none."""
        if not data_samples:
            return None, []
        first = data_samples[0]
        if 'text_tokens' in first:
            rows = [np.asarray(ds.text_tokens).reshape(-1, np.shape(first.text_tokens)[-1])
                    for ds in data_samples]
            tokens = torch.as_tensor(np.concatenate(rows), dtype=torch.long, device=device)
            return tokens, [len(r) for r in rows]
        if 'text' in first:
            texts = [_caption_list(ds) for ds in data_samples]
            return (self.tokenizer([t for group in texts for t in group]).to(device),
                    [len(group) for group in texts])
        return None, []

    def _tokens(self, data_samples: Sequence[DataSample], device) -> torch.Tensor:
        """One caption per image for the contrastive loss."""
        tokens, counts = self._captions(data_samples, device)
        if tokens is None:
            raise ValueError('ContrastiveCLIP: loss mode needs captions: data samples with '
                             '`text_tokens` (the TokenizeText transform + PackInputs('
                             "algorithm_keys=['text_tokens'])) or `text`; got fields "
                             f'{sorted(data_samples[0].keys())}.')
        if any(c != 1 for c in counts):
            raise ValueError('ContrastiveCLIP: loss mode needs one caption per image, got '
                             f'{counts[:8]} captions for the first samples (TokenizeText '
                             'picks one of a list).')
        return tokens

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) clamped to ``max_logit_scale``."""
        return self.logit_scale.clamp(max=self.max_log_scale).exp()

    # ------------------------------------------------------------------------------ forward
    def forward(self, inputs: Optional[torch.Tensor] = None,
                data_samples: Optional[List[DataSample]] = None, mode: str = 'tensor',
                images: Optional[torch.Tensor] = None):
        """``images`` is ``inputs`` under the name mmpretrain's ``MultiModalDataPreprocessor``
        gives it (the retrieval configs use that preprocessor, which lets caption-only batches
        through)."""
        if images is not None:
            if inputs is not None:
                raise ValueError('ContrastiveCLIP: got both inputs and images; they are the '
                                 'same batch under two names, give one.')
            inputs = images
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs, data_samples)
        raise RuntimeError(f'ContrastiveCLIP: invalid mode {mode!r} (loss, predict or tensor).')

    def loss(self, inputs: torch.Tensor, data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Symmetric InfoNCE over the global batch (OpenCLIP's ``ClipLoss``): by default every
        rank builds the full logits and gradients flow through its own features; with
        ``local_loss`` each rank scores its own rows against all columns."""
        if self.training:
            with torch.no_grad():  # OpenCLIP clamps after each step; here before each use
                self.logit_scale.clamp_(0, self.max_log_scale)
        self._class_embeds = None  # zero-shot classifier is stale once anything trains
        image = self.extract_image_feat(inputs)
        text = self.extract_text_feat(self._tokens(data_samples, inputs.device))
        all_image = _gather(image, self.gather_with_grad)
        all_text = _gather(text, self.gather_with_grad)
        if not torch.compiler.is_compiling() and not self._batch_checked:
            # the first batch only: a later one of 1 pair can be a data remainder (one loss of 0)
            self._batch_checked = True
            if all_image.shape[0] < 2:  # a shape, known on the host: no sync
                raise ValueError(
                    'ContrastiveCLIP: the contrastive loss needs a global batch of at least 2 '
                    'image-text pairs (each pair is scored against the others), got 1 '
                    '(train_dataloader.batch_size x GPUs); its loss would be 0 at every '
                    'iteration.')
        scale = self.scale()
        # logits and cross-entropy in fp32 whatever the autocast: at exp(logit_scale) = 100 an
        # fp16 logit would be a multiple of 0.0625
        with torch.autocast(image.device.type, enabled=False):
            if self.local_loss:
                rank = get_dist_info()[0]
                per_image = scale * image @ all_text.t()
                per_text = scale * text @ all_image.t()
                labels = torch.arange(image.shape[0], device=image.device) + rank * image.shape[0]
            else:
                per_image = scale * all_image @ all_text.t()
                per_text = per_image.t()
                labels = torch.arange(per_image.shape[0], device=per_image.device)
            loss = (F.cross_entropy(per_image, labels) + F.cross_entropy(per_text, labels)) / 2
        return dict(loss=loss, logit_scale=scale.detach())

    @torch.no_grad()
    def class_embeddings(self, device) -> torch.Tensor:
        """(E, num_classes) zero-shot classifier: per class, the mean of its normalised prompt
        embeddings, re-normalised (OpenAI / OpenCLIP). Cached until the next training step.

        Prompts cut at ``context_length`` are warned about (naming the template); classes whose
        prompts are identical under every template (cut before the class name, or the same name
        twice) are an error: their scores would be equal and the accuracy meaningless."""
        if self.zero_shot is None:
            raise RuntimeError('ContrastiveCLIP: predict mode needs zero_shot=dict(classes=..., '
                               'templates=...) in the model config.')
        if self._class_embeds is None or self._class_embeds.device != torch.device(device):
            classes, templates = self.zero_shot['classes'], self.zero_shot['templates']
            prompts = [t(c) for c in classes for t in templates]
            tokens = self.tokenizer(prompts)
            self._check_prompts(classes, templates, prompts, tokens)
            self._class_embeds = self.embed_prompts(tokens, len(classes), device,
                                                    self.zero_shot['batch_size'])
        return self._class_embeds

    def embed_prompts(self, tokens: torch.Tensor, num_classes: int, device,
                      batch_size: int = 1000) -> torch.Tensor:
        """Token ids (num_classes * T, L) of every class's T prompts (class-major) -> the
        (E, num_classes) classifier: per class, the mean of its normalised prompt embeddings,
        re-normalised."""
        feats = torch.cat([self.extract_text_feat(tokens[i:i + batch_size].to(device))
                           for i in range(0, len(tokens), batch_size)])
        feats = F.normalize(feats.view(num_classes, len(tokens) // num_classes, -1).mean(1),
                            dim=-1)
        return feats.t().contiguous()

    def _check_prompts(self, classes: Sequence[str], templates: Sequence, prompts: List[str],
                       tokens: torch.Tensor) -> None:
        """Warn about templates whose prompts do not fit ``context_length``; refuse classes
        whose token ids are identical under every template."""
        n_t, ctx = len(templates), self.context_length
        text = [getattr(t, '__self__', t) for t in templates]  # str.format -> the template
        lengths = self.tokenizer.num_tokens(prompts)
        for j, template in enumerate(text):
            cut = [i for i in range(j, len(prompts), n_t) if lengths[i] > ctx]
            if cut:
                longest = max(cut, key=lambda i: lengths[i])
                MMLogger.get_current_instance().warning(
                    f'ContrastiveCLIP zero-shot: template {template!r} does not fit '
                    f'context_length {ctx}: {len(cut)} of {len(classes)} class prompts are cut at '
                    f'the end (e.g. {prompts[longest]!r}: {lengths[longest]} tokens with start '
                    f'and end of text), and what is cut may be the class name.')
        _, inverse, counts = torch.unique(tokens.view(len(classes), -1), dim=0,
                                          return_inverse=True, return_counts=True)
        if len(counts) < len(classes):
            groups: Dict[int, List[str]] = {}
            for c, g in zip(classes, inverse.tolist()):
                groups.setdefault(g, []).append(c)
            same = [names for names in groups.values() if len(names) > 1]
            raise ValueError(
                f'ContrastiveCLIP zero-shot: the prompts of classes {same[0]!r}'
                f'{f" (and {len(same) - 1} more groups)" if len(same) > 1 else ""} tokenise '
                f'identically under every template at '
                f'context_length {ctx}, so their scores are equal and the accuracy meaningless. '
                f'Templates: {text[:3]}{" ..." if n_t > 3 else ""}. Use distinct class names and '
                f'templates that fit (the class name early), or a larger context_length.')

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None) -> List[DataSample]:
        image = self.extract_image_feat(inputs)
        with torch.autocast(inputs.device.type, enabled=False):
            logits = self.scale() * image @ self.class_embeddings(inputs.device).float()
        scores = logits.softmax(dim=-1)
        labels = scores.argmax(dim=-1, keepdim=True)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(inputs.shape[0])]
        for ds, score, label in zip(data_samples, scores, labels):
            ds.set_pred_score(score).set_pred_label(label)
        return data_samples

    # ----------------------------------------------------------------------------- retrieval
    def extract_feat(self, images: Optional[torch.Tensor] = None,
                     data_samples: Optional[List[DataSample]] = None) -> Dict[str, torch.Tensor]:
        """What image-text retrieval needs of a batch (``tensor`` mode; the interface of
        mmpretrain's retrieval models, which ``RetrievalTestLoop`` and the retrieval inferencers
        call): ``image_feat`` (B, E) of the images, ``text_feat`` (T, E) of every caption the
        samples carry, in order, and where the samples give them (``COCORetrieval`` /
        ``Flickr30kRetrieval`` in test mode), ``image_id`` (B, ) and ``text_id`` (T, ): each
        image's and caption's index in the dataset. Features are L2-normalised fp32."""
        device = self.logit_scale.device
        feats = {}
        if images is not None:
            feats['image_feat'] = self.extract_image_feat(images)
            if data_samples and all('image_id' in ds for ds in data_samples):
                feats['image_id'] = torch.as_tensor([int(ds.image_id) for ds in data_samples],
                                                    device=device)
        tokens, counts = self._captions(data_samples, device)
        if tokens is not None:
            feats['text_feat'] = self.extract_text_feat(tokens)
            if all('gt_text_id' in ds for ds in data_samples):
                ids = [[int(i) for i in np.asarray(ds.gt_text_id).reshape(-1)]
                       for ds in data_samples]
                bad = [(len(i), n) for i, n in zip(ids, counts) if len(i) != n]
                if bad:
                    raise ValueError(f'ContrastiveCLIP: a sample has {bad[0][1]} captions but '
                                     f'{bad[0][0]} gt_text_id; they must pair one to one.')
                feats['text_id'] = torch.as_tensor([i for group in ids for i in group],
                                                   device=device)
        if not feats:
            raise ValueError('ContrastiveCLIP: nothing to encode: give images, or data samples '
                             'with `text` or `text_tokens` (for retrieval, the test pipeline '
                             "packs them: PackInputs(algorithm_keys=['text', ...])).")
        return feats

    @torch.no_grad()
    def predict_all(self, feats: Dict[str, torch.Tensor],
                    data_samples: Optional[List[DataSample]] = None,
                    num_images: Optional[int] = None, num_texts: Optional[int] = None,
                    cal_i2t: bool = True, cal_t2i: bool = True) -> Tuple[List[DataSample], ...]:
        """Rank every caption for each image (i2t) and every image for each caption (t2i) by
        cosine similarity, OpenCLIP's retrieval score (mmpretrain's retrieval interface, called
        by ``RetrievalTestLoop`` and the retrieval inferencers).

        Args:
            feats: :meth:`extract_feat` outputs of this rank, concatenated over its batches.
            data_samples: This rank's data samples in the same order (``None``: bare ones).
            num_images, num_texts: Gallery sizes (the dataset's ``img_size`` / ``text_size``).
            cal_i2t, cal_t2i: Which directions to compute.

        Returns:
            The requested of ``(i2t, t2i)``, in this order. i2t: one sample per image of this
            rank, ``pred_score`` its similarity to every caption of the gallery, ``gt_label``
            its captions' ids (``gt_text_id``). t2i: one sample per caption of this rank,
            ``pred_score`` over every image, ``gt_label`` its image's id (``gt_image_id``).
            The galleries are gathered from every rank and, where the features carry ids,
            placed by id, so neither the sampler's order nor the split between ranks matters;
            an image or caption of the dataset without features is an error.
        """
        results = []
        with torch.autocast(self.logit_scale.device.type, enabled=False):
            if cal_i2t:
                texts = _gallery(feats, 'text', num_texts)
                scores = _features(feats, 'image').float() @ texts.t()
                results.append(_i2t_samples(scores, data_samples))
            if cal_t2i:
                images = _gallery(feats, 'image', num_images)
                scores = _features(feats, 'text').float() @ images.t()
                results.append(_t2i_samples(scores, data_samples))
        return tuple(results)


def _caption_list(ds: DataSample) -> list:
    """A sample's captions as a list (one string, or the list a retrieval test set gives);
    ``None`` for each caption given as token ids only."""
    if 'text' in ds:
        return [ds.text] if isinstance(ds.text, str) else list(ds.text)
    tokens = np.asarray(ds.text_tokens)
    return [None] * (1 if tokens.ndim == 1 else len(tokens))


def _features(feats: Dict[str, torch.Tensor], kind: str) -> torch.Tensor:
    key = f'{kind}_feat'
    if key not in feats:
        raise ValueError(f'ContrastiveCLIP retrieval needs {kind} features ({key!r}), got '
                         f'{sorted(feats)}: the batches held no {kind}s.')
    return feats[key]


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of every rank in rank order (ranks may hold different numbers of rows)."""
    if get_dist_info()[1] == 1:
        return x
    sizes = [int(n) for n in all_gather(torch.tensor([x.shape[0]], device=x.device))]
    padded = torch.cat([x, x.new_zeros((max(sizes) - x.shape[0], *x.shape[1:]))])
    return torch.cat([part[:n] for part, n in zip(all_gather(padded), sizes)])


def _gallery(feats: Dict[str, torch.Tensor], kind: str, size: Optional[int]) -> torch.Tensor:
    """Every rank's ``{kind}_feat`` rows, row i the item of id i where ids are given (a
    retrieval test set), else in rank order; ``size`` rows (default: all)."""
    rows = _gather_rows(_features(feats, kind).float())
    if f'{kind}_id' not in feats:
        return rows if size is None else rows[:size]
    ids = _gather_rows(feats[f'{kind}_id'])
    size = int(ids.max()) + 1 if size is None else size
    if int(ids.min()) < 0 or int(ids.max()) >= size:
        raise ValueError(f'ContrastiveCLIP retrieval: {kind} ids must lie in [0, {size}) (the '
                         f'{kind}s of the dataset), got ids {int(ids.min())} to {int(ids.max())}.')
    gallery = rows.new_zeros(size, rows.shape[1])
    gallery[ids] = rows  # a padded sampler's repeats write the same row twice
    seen = torch.zeros(size, dtype=torch.bool, device=ids.device)
    seen[ids] = True
    if not seen.all():
        missing = (~seen).nonzero()[:, 0].tolist()
        raise ValueError(f'ContrastiveCLIP retrieval: {len(missing)} of the {size} {kind}s of '
                         f'the dataset have no features (ids {missing[:8]}'
                         f'{" ..." if len(missing) > 8 else ""}): every test sample must be '
                         'encoded (a test dataloader with drop_last=True loses the last batch).')
    return gallery


def _i2t_samples(scores: torch.Tensor,
                 data_samples: Optional[List[DataSample]]) -> List[DataSample]:
    if data_samples is None:
        data_samples = [DataSample() for _ in range(scores.shape[0])]
    if len(data_samples) != scores.shape[0]:
        raise ValueError(f'ContrastiveCLIP retrieval: {len(data_samples)} data samples for '
                         f'{scores.shape[0]} images.')
    for ds, score in zip(data_samples, scores):
        if 'gt_text_id' in ds:
            ds.set_gt_label(torch.as_tensor(np.asarray(ds.gt_text_id).reshape(-1)))
        ds.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
    return data_samples


def _t2i_samples(scores: torch.Tensor,
                 data_samples: Optional[List[DataSample]]) -> List[DataSample]:
    """One new sample per caption (an image sample of a retrieval test set carries five)."""
    out = []
    for ds in data_samples or []:
        texts = _caption_list(ds)
        if 'gt_image_id' in ds:
            image_ids = np.asarray(ds.gt_image_id).reshape(-1)
        else:
            image_ids = [ds.image_id if 'image_id' in ds else None] * len(texts)
        for text, image_id in zip(texts, image_ids):
            sample = DataSample() if text is None else DataSample(text=text)
            if image_id is not None:
                sample.set_gt_label(int(image_id))
            out.append(sample)
    if data_samples is None:
        out = [DataSample() for _ in range(scores.shape[0])]
    if len(out) != scores.shape[0]:
        raise ValueError(f'ContrastiveCLIP retrieval: the data samples carry {len(out)} '
                         f'captions, the features {scores.shape[0]}.')
    for sample, score in zip(out, scores):
        sample.set_pred_score(score).set_pred_label(score.argmax(keepdim=True))
    return out
