"""Version shims that let the pinned OpenMMLab packages run on torch 2.11 to 2.14 and on CPU-only
machines.

Each shim names the stock behaviour it works around and the versions of the package that behaves
so, and has a test in ``tests/test_compat.py``. Nothing else in the package touches stock code. They
are applied once, by ``import visionllama_mm``, and only where the installed versions are among
those they fix (:data:`SHIMS`); :func:`applied` lists the shims applied, :func:`skipped` says why
any other was not.

1. ``cpu_dist_init`` (mmengine <= 0.10.7): mmengine's ``_init_dist_pytorch`` calls
   ``torch.cuda.set_device`` unconditionally, so ``--launcher pytorch`` dies with "Found no NVIDIA
   driver" on a CPU machine. Without CUDA we skip that call and use the gloo backend (nccl needs
   GPUs). With CUDA the stock function runs unchanged.
2. ``weights_only_loader`` (torch >= 2.6 with mmengine <= 0.10.7): torch 2.6 made ``torch.load``
   default to ``weights_only=True`` and mmengine's local loader passes nothing, so a checkpoint
   written by mmengine (which holds ``HistoryBuffer`` objects in its ``message_hub``) cannot be
   loaded by ``tools/test.py``, ``load_from`` or ``--resume``. We register a local-file loader that
   always uses ``weights_only=True`` and allow-lists only the plain-data classes mmengine itself
   writes (``HistoryBuffer``, numpy arrays/scalars, and ``getattr`` restricted to HistoryBuffer's
   statistics methods). No code runs from a checkpoint: anything else in a pickle is refused with
   a message naming the file and the offending global. A file that is not a torch checkpoint (text,
   random bytes) or is truncated gets an error naming the file and the fault instead of torch's
   unpickling advice.
3. ``cpu_half_ops`` (mmcv <= 2.1.0, built with its ops): mmcv's CPU ``nms`` and ``roi_align``
   kernels take no bf16/fp16 inputs, so a detector under CPU autocast fails; such inputs run in
   fp32 (GPU inputs are untouched).
4. ``cpu_mask_paste`` (mmdet <= 3.3.0, with an mmcv built with its ops, which ``mmdet.models``
   imports): mmdet's CPU mask pasting (``_do_paste_mask`` with ``skip_empty``) builds
   ``torch.arange(y0, y1)`` over the region bounding all boxes of an image, and raises "upper bound
   and lower bound inconsistent" when every box lies beyond the image. That happens when test
   images are padded (the ViTDet LSJ pipeline pads to 1024x1024, and mmcv's ``Pad`` then reports
   the padded size, so predicted boxes may lie in the padding). Such boxes paste nothing, as on the
   GPU path, which samples the whole image.
5. ``compile_model_forward`` (mmengine <= 0.10.7): mmengine's ``compile=True`` wraps
   ``model.train_step`` in ``torch.compile``, so dynamo also traces the optimizer wrapper and the
   optimizer's ``step``. Under torch 2.14 that fails at the first iteration (dynamo cannot index
   mmengine's parameter groups: ``'UserDefinedDictVariable' object has no attribute 'items'``),
   and a compiled step would recompile whenever a scheduler changes the Python-float lr. We compile
   the model's forward instead (``nn.Module.compile`` on the unwrapped model, with the config's
   options): the loss forward and its backward run compiled; data preprocessing, the loss scaler
   and the optimizer stay eager, as in timm's and transformers' training scripts.
6. ``retrieval_metrics_numpy2`` (mmpretrain <= 1.2.0 with NumPy >= 2.0): ``RetrievalRecall`` and
   ``RetrievalAveragePrecision`` test membership with ``np.in1d``, deprecated in NumPy 2.0 and gone
   from NumPy 2.4 (``AttributeError: module 'numpy' has no attribute 'in1d'`` at the first
   evaluation). The same computation with ``np.isin``, its replacement.
"""
import importlib.metadata
import importlib.util
import os.path as osp
import pickle
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch

__all__ = ['SHIMS', 'apply_all', 'applied', 'skipped', 'installed_version', 'mmcv_has_ops',
           'why_not', 'load_checkpoint_file', 'safe_globals']

_APPLIED: List[str] = []
_SKIPPED: Dict[str, str] = {}


def applied() -> List[str]:
    """Names of the shims applied in this process."""
    return list(_APPLIED)


def skipped() -> Dict[str, str]:
    """The shims not applied in this process, each with the reason."""
    return dict(_SKIPPED)


# --------------------------------------------------------------------------------------------------
# 1. CPU distributed init
# --------------------------------------------------------------------------------------------------
def _patch_cpu_dist_init() -> None:
    """mmengine <= 0.10.7: ``--launcher pytorch`` without CUDA: gloo and no ``set_device``."""
    from mmengine.dist import utils as dist_utils

    stock = dist_utils._init_dist_pytorch
    if getattr(stock, '_visionllama_mm_shim', False):
        return

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs) -> None:
        if torch.cuda.is_available() or init_backend != 'torch':
            return stock(backend, init_backend=init_backend, **kwargs)
        if backend in (None, 'nccl'):
            backend = 'gloo'
        torch.distributed.init_process_group(backend=backend, **kwargs)

    _init_dist_pytorch._visionllama_mm_shim = True
    _init_dist_pytorch.__doc__ = (stock.__doc__ or '') + (
        '\n    [visionllama_mm shim] without CUDA: no torch.cuda.set_device, gloo backend.')
    dist_utils._init_dist_pytorch = _init_dist_pytorch


# --------------------------------------------------------------------------------------------------
# 2. weights_only checkpoint loading
# --------------------------------------------------------------------------------------------------
def _history_buffer_getattr(obj, name):
    """The only ``getattr`` a checkpoint may call: a statistics method of ``HistoryBuffer``.

    mmengine's message hub stores ``HistoryBuffer._statistics_methods`` (``min``, ``max``,
    ``current``, ``mean`` and registered ones), which pickle as ``getattr(HistoryBuffer, 'min')``.
    """
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'current', 'mean', *HistoryBuffer._statistics_methods}
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer statistics '
        'methods are allowed (Unsupported global: getattr)')


def safe_globals() -> list:
    """Plain-data classes that mmengine's own checkpoints contain, allowed under weights_only."""
    import numpy as np
    from mmengine.logging import HistoryBuffer

    core = np._core if hasattr(np, '_core') else np.core
    out = [HistoryBuffer, core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their per-type classes
    out += [type(np.dtype(t)) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                        np.float16, np.float32, np.float64)]
    out.append((_history_buffer_getattr, 'builtins.getattr'))
    return out


def _describe_start(head: bytes) -> str:
    """A few words on what a file that is not a torch checkpoint looks like."""
    if not head:
        return 'it is empty (0 bytes)'
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return f'its first bytes are {head[:16]!r}'
    if all(c.isprintable() or c in '\t\r\n' for c in text):
        return f'it looks like a text file (starts with {text[:40]!r})'
    return f'its first bytes are {head[:16]!r}'


def _check_torch_file(filename: str) -> str:
    """``'zip'`` or ``'pickle'``: which of torch.save's two formats ``filename`` is in.

    Raises:
        ValueError: it is neither (not a checkpoint), or a zip archive without its directory
            (a truncated file: the zip directory is written last).
    """
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(b'PK\x03\x04'):
        if not zipfile.is_zipfile(filename):
            raise ValueError(
                f'checkpoint {filename} is truncated or corrupt: it starts as a torch.save zip '
                f'archive but has no zip directory at its end ({osp.getsize(filename)} bytes). '
                'A run killed while saving leaves such a file; use the previous checkpoint '
                '(`last_checkpoint` in the work dir) or copy/download the file again.')
        return 'zip'
    if head[:1] == b'\x80' and head[1:2] in (b'\x02', b'\x03', b'\x04', b'\x05'):
        return 'pickle'  # torch.save(..., _use_new_zipfile_serialization=False)
    raise ValueError(
        f'{filename} is not a torch checkpoint: {_describe_start(head)}. Expected a file '
        'written by torch.save (a zip archive, or a pickle for torch < 1.6), e.g. a .pth from '
        'tools/train.py or tools/model_converters/.')


def load_checkpoint_file(filename: str, map_location=None, extra_safe_globals=()):
    """``torch.load(filename, weights_only=True)`` with mmengine's plain-data classes allowed.

    Args:
        filename: Local path.
        map_location: As in ``torch.load``.
        extra_safe_globals: More classes to allow (e.g. ``argparse.Namespace`` in the authors'
            DeiT-style checkpoints).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a torch checkpoint, or it is truncated or corrupt; the
            message names the file.
        RuntimeError: the pickle holds something else (code, foreign objects); the message names
            the file and what was refused.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found.')
    kind = _check_torch_file(filename)
    try:
        with torch.serialization.safe_globals(safe_globals() + list(extra_safe_globals)):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if kind == 'pickle' and any('truncated' in line or 'EOF' in line for line in lines):
            raise ValueError(f'checkpoint {filename} is truncated or corrupt: the pickle ends '
                             'early.') from err
        # torch's message: a generic preamble, then the line naming the refused global
        reason = next((line for line in lines if 'GLOBAL' in line or 'global' in line),
                      lines[0] if lines else repr(err))
        raise RuntimeError(
            f'Refusing to load {filename}: it holds Python objects that are not plain data and '
            f'torch.load(weights_only=True) rejects them: {reason.rstrip(".")}. visionllama_mm never '
            'unpickles code from a checkpoint. Save the weights as {"state_dict": ...} (tensors '
            'only) or convert a released checkpoint with tools/model_converters/.') from err
    except (EOFError, RuntimeError) as err:
        # damaged zip records (PytorchStreamReader), or tensor data cut short in either format
        msg = str(err)
        if isinstance(err, EOFError) or any(w in msg for w in ('PytorchStreamReader', 'zip archive',
                                                               'unexpected EOF', 'corrupted')):
            raise ValueError(f'checkpoint {filename} is truncated or corrupt: '
                             f'{msg.strip().splitlines()[0]}') from err
        raise


def _patch_weights_only_loader() -> None:
    """torch >= 2.6 with mmengine <= 0.10.7: local checkpoints load with ``weights_only=True``."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename, map_location):
        return load_checkpoint_file(filename, map_location=map_location)

    load_from_local._visionllama_mm_shim = True
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


# --------------------------------------------------------------------------------------------------
# 3. mmcv CPU ops under bf16 autocast
# --------------------------------------------------------------------------------------------------
def _half_on_cpu(t) -> bool:
    return (isinstance(t, torch.Tensor) and t.device.type == 'cpu'
            and t.dtype in (torch.bfloat16, torch.float16))


def _patch_cpu_half_ops() -> None:
    """mmcv <= 2.1.0 (with ops): bf16/fp16 CPU inputs of ``nms`` and ``roi_align`` run in fp32."""
    # the modules, not the functions that mmcv.ops re-exports under the same names
    nms_mod = importlib.import_module('mmcv.ops.nms')
    roi_mod = importlib.import_module('mmcv.ops.roi_align')

    stock_nms, stock_roi = nms_mod.nms, roi_mod.roi_align
    if getattr(stock_nms, '_visionllama_mm_shim', False):
        return

    def nms(boxes, scores, *args, **kwargs):
        if _half_on_cpu(boxes) or _half_on_cpu(scores):
            boxes, scores = boxes.float(), scores.float()
        return stock_nms(boxes, scores, *args, **kwargs)

    def roi_align(input, rois, *args, **kwargs):
        if _half_on_cpu(input) or _half_on_cpu(rois):
            return stock_roi(input.float(), rois.float(), *args, **kwargs).to(input.dtype)
        return stock_roi(input, rois, *args, **kwargs)

    for fn, stock in ((nms, stock_nms), (roi_align, stock_roi)):
        fn._visionllama_mm_shim = True
        fn.__doc__ = (stock.__doc__ or '') + '\n    [visionllama_mm shim] bf16/fp16 CPU inputs in fp32.'
    nms_mod.nms = nms  # batched_nms resolves `nms` in this module
    roi_mod.roi_align = roi_align  # RoIAlign.forward calls the module-level function


# --------------------------------------------------------------------------------------------------
# 4. mmdet CPU mask pasting when every box lies outside the image
# --------------------------------------------------------------------------------------------------
def _patch_cpu_mask_paste() -> None:
    """mmdet <= 3.3.0: CPU mask pasting of boxes that all lie beyond the image pastes nothing."""
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head

    stock = fcn_mask_head._do_paste_mask
    if getattr(stock, '_visionllama_mm_shim', False):
        return

    def _do_paste_mask(masks, boxes, img_h, img_w, skip_empty=True):
        if skip_empty and boxes.numel():
            # the region the CPU path pastes into: empty when all boxes lie beyond the image
            y0 = max(int(boxes[:, 1].min().floor()) - 1, 0)
            x0 = max(int(boxes[:, 0].min().floor()) - 1, 0)
            y1 = min(int(boxes[:, 3].max().ceil()) + 1, img_h)
            x1 = min(int(boxes[:, 2].max().ceil()) + 1, img_w)
            if y0 >= y1 or x0 >= x1:
                empty = masks.new_zeros((masks.shape[0], 0, 0), dtype=torch.float32)
                return empty, (slice(0, 0), slice(0, 0))
        return stock(masks, boxes, img_h, img_w, skip_empty)

    _do_paste_mask._visionllama_mm_shim = True
    _do_paste_mask.__doc__ = (stock.__doc__ or '') + (
        '\n    [visionllama_mm shim] boxes all outside the image paste nothing on CPU.')
    fcn_mask_head._do_paste_mask = _do_paste_mask


# --------------------------------------------------------------------------------------------------
# 5. compile=True compiles the model's forward, not the whole train_step
# --------------------------------------------------------------------------------------------------
def _patch_runner_compile() -> None:
    """mmengine <= 0.10.7: ``compile=True`` compiles the model forward, not ``train_step``."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner import Runner

    stock = Runner._maybe_compile
    if getattr(stock, '_visionllama_mm_shim', False):
        return

    def _maybe_compile(self, target: str) -> None:
        options = self.cfg.get('compile', None)
        if target != 'train_step' or options is None or options is False:
            return stock(self, target)
        if options is True:
            options = {}
        if not isinstance(options, dict):
            raise TypeError(f'compile: True, False or a dict of torch.compile options, got '
                            f'{options!r}')
        model = self.model.module if is_model_wrapper(self.model) else self.model
        model.compile(**dict(options))
        self.logger.info(f'compile: torch.compile-d the forward of {type(model).__name__} '
                         f'(options {dict(options)}); the first iterations compile it.')

    _maybe_compile._visionllama_mm_shim = True
    _maybe_compile.__doc__ = (stock.__doc__ or '') + (
        '\n    [visionllama_mm shim] compiles the model forward, not the optimizer step.')
    Runner._maybe_compile = _maybe_compile


# --------------------------------------------------------------------------------------------------
# 6. mmpretrain's retrieval metrics without np.in1d
# --------------------------------------------------------------------------------------------------
def _patch_retrieval_metrics() -> None:
    """mmpretrain <= 1.2.0 with NumPy >= 2.0: the retrieval metrics use ``np.isin``."""
    import numpy as np
    from mmpretrain.evaluation.metrics import retrieval

    stock = retrieval.RetrievalRecall.calculate
    if getattr(stock, '_visionllama_mm_shim', False):
        return

    def _indices(x) -> np.ndarray:
        return np.asarray(retrieval.to_tensor(x).cpu())

    def calculate(pred, target, topk, pred_indices=False, target_indices=False):
        topk = (topk, ) if isinstance(topk, int) else topk
        if any(k <= 0 for k in topk):
            raise ValueError('`topk` must be a ingter larger than 0 or seq of ingter larger '
                             'than 0.')
        pred = retrieval._format_pred(pred, max(topk), pred_indices)
        target = retrieval._format_target(target, target_indices)
        assert len(pred) == len(target), (
            f'Length of `pred`({len(pred)}) and `target` ({len(target)}) must be the same.')
        pairs = [(_indices(p), _indices(t)) for p, t in zip(pred, target)]
        return [torch.tensor([float(np.isin(p[:k], t).any()) for p, t in pairs]).mean() * 100
                for k in topk]

    def _calculateAp_for_sample(pred, target, mode):
        pred, target = _indices(pred), _indices(target)
        ranks = np.flatnonzero(np.isin(pred, target))  # 0-based ranks of the relevant items
        ap = 0
        for i, rank in enumerate(ranks):
            precision = (i + 1) / (rank + 1)
            if mode == 'integrate':  # mean of the precisions before and at this hit
                precision = ((i / rank if rank > 0 else 1) + precision) / 2
            ap += precision
        return ap / len(target) * 100

    calculate._visionllama_mm_shim = True
    calculate.__doc__ = (stock.__doc__ or '') + '\n    [visionllama_mm shim] np.isin for np.in1d.'
    retrieval.RetrievalRecall.calculate = staticmethod(calculate)
    retrieval._calculateAp_for_sample = _calculateAp_for_sample  # RetrievalAveragePrecision's


# --------------------------------------------------------------------------------------------------
# which shims apply
# --------------------------------------------------------------------------------------------------
# A guard is (distribution, lowest, highest): the installed version must lie in [lowest, highest]
# (None: unbounded). ``needs_ops``: the shim patches modules that import mmcv's compiled ops.
Guard = Tuple[str, Optional[str], Optional[str]]

SHIMS = (
    # (name, the versions whose behaviour it fixes, needs mmcv's compiled ops, function)
    ('cpu_dist_init', (('mmengine', None, '0.10.7'), ), False, _patch_cpu_dist_init),
    ('weights_only_loader', (('torch', '2.6', None), ('mmengine', None, '0.10.7')), False,
     _patch_weights_only_loader),
    ('cpu_half_ops', (('mmcv', None, '2.1.0'), ), True, _patch_cpu_half_ops),
    ('cpu_mask_paste', (('mmdet', None, '3.3.0'), ), True, _patch_cpu_mask_paste),
    ('compile_model_forward', (('mmengine', None, '0.10.7'), ), False, _patch_runner_compile),
    ('retrieval_metrics_numpy2', (('mmpretrain', None, '1.2.0'), ('numpy', '2.0', None)), False,
     _patch_retrieval_metrics),
)


def installed_version(dist: str) -> Optional[str]:
    """The installed version of a distribution (``torch.__version__`` for torch), or None."""
    if dist == 'torch':
        return str(torch.__version__)
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def mmcv_has_ops() -> bool:
    """Whether mmcv was built with its compiled ops (``MMCV_WITH_OPS=1``: ``mmcv._ext``)."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except ImportError:  # no mmcv at all
        return False


def why_not(guards: Sequence[Guard], needs_ops: bool, versions: Dict[str, Optional[str]],
            has_ops: bool) -> Optional[str]:
    """Why a shim with these guards does not apply to ``versions``; None if it applies."""
    from mmengine.utils import digit_version

    for dist, lowest, highest in guards:
        version = versions.get(dist)
        if version is None:
            return f'{dist} is not installed'
        bounds = ' and '.join(b for b in (lowest and f'>= {lowest}', highest and f'<= {highest}')
                              if b)
        if ((lowest and digit_version(version) < digit_version(lowest))
                or (highest and digit_version(version) > digit_version(highest))):
            return f'{dist} {version} is not {bounds}, the versions whose behaviour it fixes'
    if needs_ops and not has_ops:
        return 'mmcv was built without its compiled ops (no mmcv._ext)'
    return None


def apply_all() -> None:
    """Apply every shim whose guards hold, once (idempotent)."""
    if _APPLIED or _SKIPPED:
        return
    dists = {dist for _, guards, _, _ in SHIMS for dist, _, _ in guards}
    versions = {dist: installed_version(dist) for dist in dists}
    has_ops = mmcv_has_ops()
    for name, guards, needs_ops, patch in SHIMS:
        reason = why_not(guards, needs_ops, versions, has_ops)
        if reason is None:
            patch()
            _APPLIED.append(name)
        else:
            _SKIPPED[name] = reason
