"""Image and segmentation-map loading that names the file (and sample) it cannot read.

mmcv's ``LoadImageFromFile`` fails on a bad file with messages that do not say which file or why:
a 0-byte image gives an OpenCV assertion (``!buf.empty()``), a truncated or non-image file
``AssertionError: failed to load image: <path>`` with no reason and no sample (some OpenCV builds
instead decode a truncated JPEG with grey rows and only a warning); mmseg's ``LoadAnnotations``
says ``image file is truncated`` or ``cannot identify image file <_io.BytesIO ...>``.
:class:`CheckedLoadImageFromFile` and :class:`CheckedLoadSegAnnotations` are the same transforms
(same arguments, same results for a good file) with those cases turned into one error naming the
path, the sample index and the reason; :func:`decode_image` is the image check itself, shared
with the webdataset reader.

Where they are used: :class:`visionllama_mm.engine.runner.Runner` (``tools/train.py``,
``tools/test.py``) loads with them wherever a dataset's pipeline says ``LoadImageFromFile`` /
mmseg's ``LoadAnnotations`` (:func:`use_checked_image_loading`), whether the config wrote the
line or inherited it from a stock base config, and so do the package's own datasets. The configs
themselves keep the stock names: they are held line by line against the official recipes
(``recipes.yml``). With the stock tools of mmpretrain, mmseg or mmdet, write
``dict(type='CheckedLoadImageFromFile', ...)`` in the pipeline: it is registered in all three
(``CheckedLoadSegAnnotations`` in mmseg).
"""
import io

import mmcv
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio

from ..compat import mmcv_has_ops
from ..registry import TRANSFORMS

if mmcv_has_ops():
    from mmseg.datasets.transforms import LoadAnnotations as SegLoadAnnotations
else:  # mmseg's dataset package imports mmcv.ops (its point_sample), which needs mmcv's ops
    SegLoadAnnotations = None

__all__ = [
    'CheckedLoadImageFromFile', 'CheckedLoadSegAnnotations', 'decode_image',
    'use_checked_image_loading'
]

_JPEG, _PNG = b'\xff\xd8', b'\x89PNG\r\n\x1a\n'


def _truncated(data: bytes) -> str:
    """'' for a complete JPEG/PNG (or another format), else PIL's reason for refusing it.

    The cheap test: a JPEG ends with its EOI marker ``FF D9``, a PNG with its ``IEND`` chunk.
    Files with bytes after the marker exist (camera trailers), so a missing marker is confirmed
    by a full PIL decode, which refuses truncated data (cv2 decodes it with grey rows)."""
    if data.startswith(_JPEG):
        if data.rstrip(b'\x00\r\n ')[-2:] == b'\xff\xd9':
            return ''
    elif data.startswith(_PNG):
        if b'IEND' in data[-16:]:
            return ''
    else:
        return ''
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as err:  # PIL raises OSError / SyntaxError / ValueError for broken data
        return f'{type(err).__name__}: {err}'
    return ''


def decode_image(data: bytes, where: str, context: str = '', flag: str = 'color',
                 backend: str = 'cv2') -> np.ndarray:
    """``mmcv.imfrombytes(data, flag, backend)``, or a ``ValueError`` for an empty, truncated or
    undecodable image: ``'<where> is empty (0 bytes; <context>).'``, ``'<where> is truncated
    ...'`` or ``'<where> is not a readable image ...'`` (``where`` e.g. ``'shard.tar: member
    a.jpg'``, ``context`` e.g. ``'sample 3'``)."""
    ctx = f'; {context}' if context else ''
    if len(data) == 0:
        raise ValueError(f'{where} is empty (0 bytes{ctx}).')
    why = _truncated(data)
    if why:
        raise ValueError(f'{where} is truncated or corrupt ({len(data)} bytes, the end marker '
                         f'is missing; PIL: {why}{ctx}).')
    try:
        img = mmcv.imfrombytes(data, flag=flag, backend=backend)
    except Exception as err:  # any decoder failure: name the file
        raise ValueError(f'{where} is not a readable image ({len(data)} bytes starting '
                         f'{data[:12]!r}; {backend}: {err}{ctx}).') from err
    if img is None or img.size == 0:
        raise ValueError(f'{where} is not a readable image ({len(data)} bytes starting '
                         f'{data[:12]!r}; {backend} could not decode it{ctx}).')
    return img


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` whose errors name the image and the sample.

    Same arguments and results as ``LoadImageFromFile``. A missing file raises
    ``FileNotFoundError``; an empty, truncated (a JPEG without its end marker or a PNG without
    ``IEND`` that PIL cannot decode either) or undecodable file raises ``ValueError``. Messages
    start with ``CheckedLoadImageFromFile: sample <index>: image <path>``. With
    ``ignore_empty=True`` the transform returns ``None`` instead, as the stock one does (the
    dataset then draws another sample).
    """

    def transform(self, results: dict):
        filename = results['img_path']
        where = (f'{type(self).__name__}: sample {results.get("sample_idx", "?")}: image '
                 f'{filename}')
        try:
            if self.file_client_args is not None:
                client = fileio.FileClient.infer_client(self.file_client_args, filename)
                data = client.get(filename)
            else:
                data = fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            if self.ignore_empty:
                return None
            raise FileNotFoundError(f'{where} does not exist.') from None
        except Exception as err:  # permissions, a directory, a storage backend error
            if self.ignore_empty:
                return None
            raise OSError(f'{where} cannot be read ({type(err).__name__}: {err}).') from err
        try:
            img = decode_image(data, where, flag=self.color_type, backend=self.imdecode_backend)
        except ValueError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


# mmcv without its compiled ops (mmcv-lite) cannot import mmseg's dataset package: the checked
# segmentation loader exists only where mmseg's does
CheckedLoadSegAnnotations = None
if SegLoadAnnotations is not None:

    @TRANSFORMS.register_module(toolboxes=('mmseg', ))
    class CheckedLoadSegAnnotations(SegLoadAnnotations):  # noqa: F811 (replaces the None above)
        """mmseg's ``LoadAnnotations`` whose errors name the segmentation map and the sample.

        Same arguments and results. A missing map raises ``FileNotFoundError``, one that does not
        decode (empty, truncated, not an image) ``ValueError``, both starting with
        ``CheckedLoadSegAnnotations: sample <index>: segmentation map <path>``; the stock reader
        says ``image file is truncated`` or ``cannot identify image file <_io.BytesIO ...>``.
        """

        def _load_seg_map(self, results: dict) -> None:
            path = results['seg_map_path']
            where = (f"{type(self).__name__}: sample {results.get('sample_idx', '?')}: "
                     f"segmentation map {path}")
            try:
                super()._load_seg_map(results)
            except AssertionError:  # a config mismatch (reduce_zero_label), already explained
                raise
            except FileNotFoundError:
                raise FileNotFoundError(f'{where} does not exist.') from None
            except Exception as err:  # PIL / cv2 decoding errors name no file
                raise ValueError(f'{where} cannot be read ({type(err).__name__}: {err}).') from err


def _stock_class(kind):
    """The class a pipeline's ``type`` resolves to in the current default scope, or None."""
    if not isinstance(kind, str):
        return kind
    from mmengine.registry import TRANSFORMS as ROOT
    try:
        with ROOT.switch_scope_and_registry(None) as registry:  # as the pipeline build does
            return registry.get(kind)
    except Exception:  # an unknown scope: the pipeline build will say so
        return None


def _swap(node):
    if isinstance(node, dict):
        node = {k: _swap(v) for k, v in node.items()}
        kind = node.get('type')
        if isinstance(kind, str) and kind.rsplit('.', 1)[-1] == 'LoadImageFromFile' or \
                kind is LoadImageFromFile:
            node['type'] = CheckedLoadImageFromFile
        elif (isinstance(kind, str) and kind.rsplit('.', 1)[-1] == 'LoadAnnotations'
              or isinstance(kind, type)) and SegLoadAnnotations is not None \
                and _stock_class(kind) is SegLoadAnnotations:
            node['type'] = CheckedLoadSegAnnotations
        return node
    if isinstance(node, list):
        return [_swap(v) for v in node]
    if isinstance(node, tuple):
        return tuple(_swap(v) for v in node)
    return node


def use_checked_image_loading(cfg):
    """A copy of a dataset config (or of a pipeline) whose pipelines, those of wrapped datasets
    and test-time-augmentation branches included, load images with
    :class:`CheckedLoadImageFromFile` where they say ``LoadImageFromFile``, and segmentation maps
    with :class:`CheckedLoadSegAnnotations` where they say mmseg's ``LoadAnnotations`` (as
    resolved in the current default scope): same arguments and results, errors that name the
    file and sample. Dicts and lists are copied, other values shared."""
    return _swap(cfg)
