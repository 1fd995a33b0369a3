"""clip_benchmark's webdataset test sets (the DataComp evaluation suite's format), map-style.

A dataset folder (e.g. ``wds_cars_test`` from ``huggingface-cli download djghosh/wds_cars_test
--repo-type dataset --local-dir wds_cars_test``, or DataComp's ``download_evalsets.py``) holds::

    classnames.txt                          one class name a line (classification)
    zeroshot_classification_templates.txt   one template a line, the class as ``{c}``
    dataset_type.txt                        ``retrieval`` for image-text sets (optional)
    test/nshards.txt                        the number of shards N
    test/0.tar ... test/<N-1>.tar           samples: <key>.webp|png|jpg|jpeg + <key>.cls (the class
                                            index as text) or <key>.txt (captions, one a line),
                                            and <key>.npy (a metadata vector: WILDS, fairness)

:class:`WdsBenchmarkDataset` indexes the shards once (where each sample's image lies in its tar
file) and reads one image per item, so the Runner's samplers, workers and distributed splitting
apply as to any mmengine dataset.
"""
import io
import os.path as osp
import tarfile
from typing import List, Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import BaseDataset
from webdataset.tariterators import base_plus_ext

from ..registry import DATASETS
from .image_text import build_pipeline
from .transforms import decode_image

__all__ = ['WdsBenchmarkDataset']

IMAGE_EXTENSIONS = ('webp', 'png', 'jpg', 'jpeg')  # clip_benchmark's order of preference


def _read_lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f.read().splitlines()]


def _loads_files(transform) -> bool:
    """Whether a pipeline entry is mmcv's ``LoadImageFromFile`` (by name, class or instance;
    the checked variant the Runner swaps in is a subclass)."""
    kind = transform.get('type') if isinstance(transform, dict) else type(transform)
    if isinstance(kind, str):
        return kind.split('.')[-1] in ('LoadImageFromFile', 'CheckedLoadImageFromFile')
    return isinstance(kind, type) and issubclass(kind, LoadImageFromFile)


@DATASETS.register_module()
class WdsBenchmarkDataset(BaseDataset):
    """One clip_benchmark webdataset test set (classification or image-text retrieval).

    Args:
        data_root: The dataset folder (``classnames.txt``, ``test/nshards.txt``, shards).
        split: The split folder (``'test'``).
        task: The task's name, used in messages (e.g. ``'cars'``).
        hub_repo: The Hugging Face dataset that holds the folder; a missing folder is reported
            with the command that downloads it.
        with_metadata: Read every sample's ``.npy`` metadata vector (WILDS and fairness sets);
            each data sample then carries it as ``wds_metadata``.
        pipeline: Transforms applied to ``dict(img=..., gt_label=...)``; the images come
            decoded from the shards, so a leading ``LoadImageFromFile`` (a model config's test
            pipeline) is dropped.

    Items: the pipeline's output (``PackInputs``: ``inputs`` and a ``DataSample`` with
    ``gt_label``), the data sample also carrying ``captions`` (retrieval) and ``wds_metadata``.
    ``metainfo``: ``classes`` and ``templates`` (``{c}`` written as ``{}``) for classification;
    ``dataset_type``: ``'classification'`` or ``'retrieval'`` (``dataset_type.txt``).
    """

    def __init__(self, data_root: str, split: str = 'test', task: str = '',
                 hub_repo: Optional[str] = None, with_metadata: bool = False,
                 pipeline=(), **kwargs):
        self.split, self.task, self.hub_repo = split, task or osp.basename(data_root), hub_repo
        self.with_metadata = with_metadata
        self.folder = data_root
        nshards = osp.join(data_root, split, 'nshards.txt')
        if not osp.isfile(nshards):
            get = (f'huggingface-cli download {hub_repo} --repo-type dataset --local-dir '
                   f'{data_root}' if hub_repo else
                   "DataComp's `python download_evalsets.py <data root>`")
            what = 'is missing' if not osp.isdir(data_root) else f'has no {split}/nshards.txt'
            raise FileNotFoundError(
                f'WdsBenchmarkDataset ({self.task}): the dataset folder {data_root} {what}. '
                f'Download it with: {get} (or all DataComp test sets at once with DataComp\'s '
                f'`python download_evalsets.py <data root>`).')
        type_file = osp.join(data_root, 'dataset_type.txt')
        self.dataset_type = (_read_lines(type_file)[0].lower() if osp.isfile(type_file)
                             else 'classification')
        metainfo = {}
        if self.dataset_type != 'retrieval':
            for key, name in (('classes', 'classnames.txt'),
                              ('templates', 'zeroshot_classification_templates.txt')):
                path = osp.join(data_root, name)
                if not osp.isfile(path):
                    raise FileNotFoundError(f'WdsBenchmarkDataset ({self.task}): {path} is '
                                            'missing (a classification set needs it).')
                lines = [line for line in _read_lines(path) if line]
                metainfo[key] = [t.replace('{c}', '{}') for t in lines] \
                    if key == 'templates' else lines
        with open(nshards) as f:
            self.shards = [osp.join(data_root, split, f'{i}.tar') for i in range(int(f.read()))]
        pipeline = list(pipeline)
        while pipeline and _loads_files(pipeline[0]):
            pipeline.pop(0)
        super().__init__(data_root='', metainfo=metainfo, pipeline=[], test_mode=True,
                         serialize_data=False, **kwargs)
        self.pipeline = build_pipeline(pipeline)

    def load_data_list(self) -> List[dict]:
        data_list = []
        for shard in self.shards:
            if not osp.isfile(shard):
                raise FileNotFoundError(f'WdsBenchmarkDataset ({self.task}): shard {shard} is '
                                        f'missing ({len(self.shards)} listed in '
                                        f'{self.split}/nshards.txt).')
            samples = {}
            with tarfile.open(shard) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, ext = base_plus_ext(member.name)
                    if key is None:
                        continue
                    sample = samples.setdefault(key, dict(key=key))
                    ext = ext.lower()
                    if ext in IMAGE_EXTENSIONS:
                        sample.setdefault('images', {})[ext] = (member.offset_data, member.size)
                    elif ext in ('cls', 'txt') or (ext == 'npy' and self.with_metadata):
                        sample[ext] = tar.extractfile(member).read()
            for key, sample in samples.items():
                data_list.append(self._info(shard, sample))
        if not data_list:
            raise ValueError(f'WdsBenchmarkDataset ({self.task}): no samples in {self.folder}.')
        return data_list

    def _info(self, shard: str, sample: dict) -> dict:
        where = f'{shard}: sample {sample["key"]}'
        images = sample.get('images', {})
        ext = next((e for e in IMAGE_EXTENSIONS if e in images), None)
        if ext is None:
            raise ValueError(f'WdsBenchmarkDataset ({self.task}): {where} has no image '
                             f'({"/".join(IMAGE_EXTENSIONS)}).')
        info = dict(shard=shard, offset=images[ext][0], size=images[ext][1],
                    where=f'{where}.{ext}')
        if self.dataset_type == 'retrieval':
            if 'txt' not in sample:
                raise ValueError(f'WdsBenchmarkDataset ({self.task}): {where} has no .txt '
                                 'captions (a retrieval set).')
            info['captions'] = [c for c in sample['txt'].decode('utf-8').splitlines() if c]
        else:
            if 'cls' not in sample:
                raise ValueError(f'WdsBenchmarkDataset ({self.task}): {where} has no .cls '
                                 'label.')
            info['gt_label'] = int(sample['cls'].decode().strip())
            if not 0 <= info['gt_label'] < len(self.metainfo['classes']):
                raise ValueError(f'WdsBenchmarkDataset ({self.task}): {where} has label '
                                 f'{info["gt_label"]}, but classnames.txt names '
                                 f'{len(self.metainfo["classes"])} classes.')
        if self.with_metadata:
            if 'npy' not in sample:
                raise ValueError(f'WdsBenchmarkDataset ({self.task}): {where} has no .npy '
                                 'metadata.')
            info['wds_metadata'] = np.load(io.BytesIO(sample['npy']))
        return info

    def prepare_data(self, idx: int):
        info = dict(self.get_data_info(idx))
        with open(info['shard'], 'rb') as f:
            f.seek(info['offset'])
            data = f.read(info['size'])
        img = decode_image(data, info['where'], backend='pillow')
        results = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                       sample_idx=idx)
        if 'gt_label' in info:
            results['gt_label'] = info['gt_label']
        out = self.pipeline(results)
        for key in ('captions', 'wds_metadata'):
            if key in info:
                out['data_samples'].set_field(info[key], key)
        return out
