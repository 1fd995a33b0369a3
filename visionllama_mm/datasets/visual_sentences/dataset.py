"""Visual sentences: the dataset over a JSON-lines annotation file (formats in the package
docstring of :mod:`visionllama_mm.datasets.visual_sentences`)."""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.dataset import BaseDataset

from ...registry import DATASETS
from ...utils.files import read_jsonl
from ..image_text import build_pipeline
from .transforms import default_sentence_pipeline

__all__ = ['VisualSentenceDataset', 'SENTENCE_TYPES']

#: ``type`` values of our lines; ``'perplexity'`` / ``'generation'`` come from the eval format.
SENTENCE_TYPES = ('single', 'sequence', 'video', 'pair', 'colorization', 'inpainting', 'category',
                  'multi', 'perplexity', 'generation')


def _path_list(value, key: str, where: str) -> List[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or \
            not all(isinstance(v, str) and v for v in values):
        raise ValueError(f'{where}: "{key}" must be a path or a non-empty list of paths, got '
                         f'{value!r}.')
    return values


@DATASETS.register_module()
class VisualSentenceDataset(BaseDataset):
    """Visual sentences listed in a JSON-lines file (one sentence per line; see the module
    docstring for the line formats).

    Args:
        ann_file: The JSONL file (relative to ``data_root`` unless absolute).
        data_root: Prefix of the annotation file and of every path in it.
        pipeline: Transforms; ``None`` gives :func:`default_sentence_pipeline` (``image_size``).
        image_size: Side of the default pipeline's resize (unused when ``pipeline`` is given).
        seed: Seed of the per-line random numbers (inpainting masks): line ``i`` gets
            ``rng_seed = [seed, i]``.
        **kwargs: ``BaseDataset``'s (``indices``, ``test_mode``, ``lazy_init`` ...).
    """

    def __init__(self, ann_file: str, data_root: str = '', pipeline: Optional[Sequence] = None,
                 image_size: int = 256, seed: int = 0, **kwargs):
        self.image_size, self.seed = image_size, seed
        if pipeline is None:
            pipeline = default_sentence_pipeline(image_size)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         pipeline=build_pipeline(pipeline).transforms, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'VisualSentenceDataset: annotation file {self.ann_file} '
                                    'does not exist.')
        data_list = []
        for number, row in read_jsonl(self.ann_file):
            data_list.append(self._parse(row, f'{self.ann_file}:{number}', len(data_list)))
        if not data_list:
            raise ValueError(f'VisualSentenceDataset: annotation file {self.ann_file} has no '
                             'sentences.')
        return data_list

    def _parse(self, row, where: str, index: int) -> dict:
        if not isinstance(row, dict):
            raise ValueError(f'{where}: expected a JSON object, got {type(row).__name__}.')
        info = dict(rng_seed=[self.seed, index], num_target_images=0, video=None)
        if 'input' in row:
            targets = [k for k in ('target', 'output') if k in row]
            if len(targets) != 1:
                raise ValueError(f'{where}: an evaluation line needs "input" and exactly one of '
                                 f'"target" (perplexity) / "output" (generation); it has '
                                 f'{sorted(row)}.')
            inputs = _path_list(row['input'], 'input', where)
            target = _path_list(row[targets[0]], targets[0], where)
            paths = inputs + target
            info.update(sentence_type='perplexity' if targets[0] == 'target' else 'generation',
                        num_target_images=len(target))
        elif 'video' in row:
            frames = row.get('frames')
            if not isinstance(frames, list) or not frames or not all(
                    isinstance(i, int) and i >= 0 for i in frames):
                raise ValueError(f'{where}: a video line needs "frames", a non-empty list of '
                                 f'frame indices >= 0; got {frames!r}.')
            video = osp.join(self.data_root, _path_list(row['video'], 'video', where)[0])
            paths = [video] * len(frames)
            info.update(sentence_type=row.get('type', 'video'), video=video, frames=frames)
        elif 'images' in row:
            paths = _path_list(row['images'], 'images', where)
            info['sentence_type'] = row.get('type', 'single' if len(paths) == 1 else 'sequence')
        else:
            raise ValueError(f'{where}: expected "images" (training sentence), "video" + "frames" '
                             f'or "input" + "target"/"output" (evaluation); the line has '
                             f'{sorted(row)}.')
        if info['sentence_type'] not in SENTENCE_TYPES:
            raise ValueError(f'{where}: unknown type {info["sentence_type"]!r}; expected one of '
                             f'{SENTENCE_TYPES}.')
        if info['video'] is None:
            paths = [osp.join(self.data_root, p) for p in paths]
        info['img_paths'] = paths
        return info
