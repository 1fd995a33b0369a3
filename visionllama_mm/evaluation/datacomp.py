"""The DataComp zero-shot suite (40 tasks, 38 of them in the average) for ``ContrastiveCLIP``.

:data:`TASKS` is the one table of the suite: each task's DataComp key and display name, the
dataset folder it is read from, its kind, the metric DataComp reports for it (``main_metric`` of
DataComp's ``tasklist.yml``; top-1 when the list names none), the column group of the papers'
tables and whether it counts in the 38-task average (FairFace and UTKFace report no single
number and do not). The evaluation configs under ``configs/vitamin/datacomp/`` are written from
it by :func:`write_configs` (one config per task family: the tasks that share a dataset layout and
a metric), and ``tools/analysis_tools/datacomp_eval.py`` runs every task and prints the average.

Metrics that mmpretrain lacks, each reported in percent:

* :class:`MeanPerClassRecall`: the mean over classes of the fraction of their images classified
  correctly, over the classes that have test images (scikit-learn's ``balanced_accuracy_score``,
  DataComp's definition; mmpretrain's macro recall also averages classes without images, as 0);
* :class:`MacroF1`: the F1 score averaged over the classes present in the ground truth (WILDS'
  ``F1(average='macro')``, iWildCam's main metric);
* :class:`WorstGroupAccuracy`: top-k accuracy within each group of a metadata column, the lowest
  over the groups that have samples (FMoW regions, GeoDE regions, Dollar Street income groups);
* :class:`ImageTextRecall`: image-to-text and text-to-image recall@k over images with several
  captions each (an image counts as found when any of its captions is in the top k), and their
  mean at k=1, DataComp's retrieval score;
* :class:`WinoGAViLJaccard`: WinoGAViL's games, each scored by the Jaccard index of the images
  picked for the cue and the true associations, averaged over the games with 5-6 and with 10-12
  candidates (DataComp's score is the 10-12 one).

:class:`ZeroShotTestLoop`, :class:`ImageTextRetrievalLoop` and :class:`WinoGAViLTestLoop` run the
tasks through the Runner with the model's public feature methods (``extract_image_feat``,
``extract_text_feat``, ``tokenizer``, ``scale``), in fp32: the first classifies with the class
names and templates that come with the test dataset, the second embeds each image and its
captions for :class:`ImageTextRecall`, the third embeds each game's cue prompt and candidate
images for :class:`WinoGAViLJaccard`.
"""
import os.path as osp
import textwrap
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.runner import TestLoop

from ..registry import METRICS, MultiRegistry

__all__ = [
    'DataCompTask', 'TASKS', 'FAMILIES', 'task_by_name', 'family_config', 'write_configs',
    'MeanPerClassRecall', 'MacroF1', 'WorstGroupAccuracy', 'ImageTextRecall',
    'WinoGAViLJaccard', 'ImageTextRetrievalLoop', 'ZeroShotTestLoop', 'WinoGAViLTestLoop',
    'zero_shot_weights', 'winogavil_prompt', 'data_folder', 'missing_data', 'AVERAGE_SIZE'
]

LOOPS = MultiRegistry('LOOPS')
AVERAGE_SIZE = 38  # tasks in DataComp's average


class DataCompTask(dict):
    """One row of :data:`TASKS` (a dict with attribute access, so that a config can hold it).

    Keys: ``key`` (DataComp's ``tasklist.yml`` key), ``name`` (its display name), ``folder``
    (the dataset folder under the data root), ``repo`` (the Hugging Face dataset that holds it),
    ``family`` (the config that evaluates it, :data:`FAMILIES`), ``metric`` (DataComp's main
    metric name), ``group`` (the papers' column: ``'imagenet'``, ``'shift'``, ``'vtab'``,
    ``'retrieval'`` or ``''``), ``in_average`` and ``supported`` (``False`` with ``reason``).
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _task(key: str, name: str, family: str, group: str = '', metric: str = 'acc1',
          folder: Optional[str] = None, repo: Optional[str] = None, in_average: bool = True,
          reason: str = '') -> DataCompTask:
    if folder is None:  # DataComp's download_evalsets.py: wds_<key, '/' -> '-'>_test
        short = key.split('/', 1)[1] if key.startswith('fairness/') else key
        folder = f"wds_{short.replace('/', '-')}_test"
    return DataCompTask(key=key, name=name, family=family, group=group, metric=metric,
                        folder=folder, repo=repo or f'djghosh/{folder}', in_average=in_average,
                        supported=not reason, reason=reason)


# name -> (metric key the family's evaluator reports, what the config's evaluator is)
FAMILIES = OrderedDict(
    zeroshot_cls_acc1=dict(
        metric='accuracy/top1', evaluator=dict(type='Accuracy', topk=(1, )),
        about='zero-shot classification scored by top-1 accuracy'),
    zeroshot_cls_mean_per_class_recall=dict(
        metric='mean_per_class_recall', evaluator=dict(type='MeanPerClassRecall'),
        about='zero-shot classification scored by the mean per-class recall'),
    retrieval=dict(
        metric='retrieval/mean_recall@1', evaluator=dict(type='ImageTextRecall', topk=(1, 5, 10)),
        about='image-text retrieval scored by the mean of image-to-text and text-to-image '
              'recall@1'),
    winogavil=dict(
        metric='winogavil/jaccard_score_10-12', evaluator=dict(type='WinoGAViLJaccard'),
        about='WinoGAViL, each game (a cue word and 5-12 candidate images) scored by the Jaccard '
              'index of the images picked for the cue and the true associations; the score is '
              'the mean over the games with 10 or 12 candidates'),
    wilds_macro_f1=dict(
        metric='macro_f1', evaluator=dict(type='MacroF1'),
        about='zero-shot classification scored by the F1 score averaged over the classes '
              'present (WILDS iWildCam)'),
    wilds_worst_region=dict(
        metric='worst_group/top1', evaluator=dict(type='WorstGroupAccuracy', topk=1, column=0),
        about='zero-shot classification scored by the accuracy of the worst region (WILDS '
              'FMoW; metadata column 0 is the region)'),
    fairness_top5_worst_income=dict(
        metric='worst_group/top5', evaluator=dict(type='WorstGroupAccuracy', topk=5, column=0),
        about='zero-shot classification scored by the top-5 accuracy of the worst income group '
              '(Dollar Street; metadata column 0 is the income group)'),
    fairness_worst_region=dict(
        metric='worst_group/top1', evaluator=dict(type='WorstGroupAccuracy', topk=1, column=0),
        about='zero-shot classification scored by the accuracy of the worst region (GeoDE; '
              'metadata column 0 is the region)'),
)

_CLS, _MPCR = 'zeroshot_cls_acc1', 'zeroshot_cls_mean_per_class_recall'
_FAIR_REASON = ('DataComp reports no single number for it (race / gender / age accuracies per '
                'group) and leaves it out of the 38-task average')

# DataComp's tasklist.yml, in its order
TASKS: List[DataCompTask] = [
    _task('vtab/caltech101', 'Caltech-101', _MPCR, 'vtab', 'mean_per_class_recall'),
    _task('cifar10', 'CIFAR-10', _CLS),
    _task('vtab/cifar100', 'CIFAR-100', _CLS, 'vtab'),
    _task('vtab/clevr_count_all', 'CLEVR Counts', _CLS, 'vtab'),
    _task('vtab/clevr_closest_object_distance', 'CLEVR Distance', _CLS, 'vtab'),
    _task('country211', 'Country211', _CLS),
    _task('vtab/dtd', 'Describable Textures', _CLS, 'vtab'),
    _task('vtab/eurosat', 'EuroSAT', _CLS, 'vtab'),
    _task('fgvc_aircraft', 'FGVC Aircraft', _MPCR, metric='mean_per_class_recall'),
    _task('food101', 'Food-101', _CLS),
    _task('gtsrb', 'GTSRB', _CLS),
    _task('imagenet1k', 'ImageNet 1k', _CLS, 'imagenet'),
    _task('imagenet_sketch', 'ImageNet Sketch', _CLS, 'shift'),
    _task('imagenetv2', 'ImageNet v2', _CLS, 'shift'),
    _task('imagenet-a', 'ImageNet-A', _CLS, 'shift'),
    _task('imagenet-o', 'ImageNet-O', _CLS, 'shift'),
    _task('imagenet-r', 'ImageNet-R', _CLS, 'shift'),
    _task('vtab/kitti_closest_vehicle_distance', 'KITTI Vehicle Distance', _CLS, 'vtab'),
    _task('mnist', 'MNIST', _CLS),
    _task('objectnet', 'ObjectNet', _CLS, 'shift'),
    _task('vtab/flowers', 'Oxford Flowers-102', _MPCR, 'vtab', 'mean_per_class_recall'),
    _task('vtab/pets', 'Oxford-IIIT Pet', _MPCR, 'vtab', 'mean_per_class_recall'),
    _task('voc2007', 'Pascal VOC 2007', _CLS),
    _task('vtab/pcam', 'PatchCamelyon', _CLS, 'vtab'),
    _task('renderedsst2', 'Rendered SST2', _CLS),
    _task('vtab/resisc45', 'RESISC45', _CLS, 'vtab'),
    _task('cars', 'Stanford Cars', _CLS),
    _task('stl10', 'STL-10', _CLS),
    _task('sun397', 'SUN397', _CLS, 'vtab'),
    _task('vtab/svhn', 'SVHN', _CLS, 'vtab'),
    # DataComp reads the two retrieval sets from Hugging Face `datasets` tables
    # (nlphuji/flickr_1k_test_image_text_retrieval, nlphuji/mscoco_2014_5k_test_image_text_
    # retrieval); here they are clip_benchmark's webdataset shards of the same Karpathy test
    # splits (an image with its captions, one a line)
    _task('retrieval/flickr_1k_test_image_text_retrieval', 'Flickr', 'retrieval', 'retrieval',
          'mean_recall@1', folder='wds_flickr30k', repo='clip-benchmark/wds_flickr30k'),
    _task('retrieval/mscoco_2014_5k_test_image_text_retrieval', 'MSCOCO', 'retrieval',
          'retrieval', 'mean_recall@1', folder='wds_mscoco_captions',
          repo='clip-benchmark/wds_mscoco_captions'),
    # DataComp reads it with `datasets` from nlphuji/winogavil; here the dataset's parquet
    # conversion (or the arrow file of DataComp's `datasets` cache) is read with pyarrow
    _task('misc/winogavil', 'WinoGAViL', 'winogavil', 'retrieval', 'jaccard_score_10-12',
          folder='winogavil', repo='nlphuji/winogavil'),
    _task('wilds/iwildcam', 'iWildCam', 'wilds_macro_f1', metric='F1-macro_all'),
    _task('wilds/camelyon17', 'Camelyon17', _CLS),
    # DataComp's FMoW evaluator means to leave the "Other" region out of the worst region, but it
    # tests for "Other" in the group's name, which is the region's number there (its evaluator
    # gives WILDS' grouper no metadata names), so all six regions count, as they do here
    _task('wilds/fmow', 'FMoW', 'wilds_worst_region', metric='acc_worst_region'),
    _task('fairness/dollar_street', 'Dollar Street', 'fairness_top5_worst_income',
          metric='acc_top5_wg'),
    _task('fairness/geode', 'GeoDE', 'fairness_worst_region', metric='acc_wg'),
    _task('fairness/fairface', 'FairFace', '', metric='', in_average=False, reason=_FAIR_REASON),
    _task('fairness/utkface', 'UTKFace', '', metric='', in_average=False, reason=_FAIR_REASON),
]
GROUP_NAMES = OrderedDict(imagenet='ImageNet', shift='IN dist. shift', vtab='VTAB',
                          retrieval='Retrieval')


def task_by_name(name: str) -> DataCompTask:
    """A task by DataComp key (``'vtab/pets'``), display name (``'Oxford-IIIT Pet'``) or
    folder (``'wds_vtab-pets_test'``), case-insensitive."""
    wanted = name.strip().lower()
    for task in TASKS:
        if wanted in (task.key.lower(), task.name.lower(), task.folder.lower()):
            return task
    raise KeyError(f'DataComp has no task {name!r}; tasks (key or name): '
                   + ', '.join(t.key for t in TASKS))


def prepare_command(task: DataCompTask, folder: str) -> str:
    """The shell command that downloads ``task`` into ``folder``."""
    if task.family == 'winogavil':
        from ..datasets.winogavil import winogavil_download_command
        return winogavil_download_command(folder, task.repo)
    return (f'huggingface-cli download {task.repo} --repo-type dataset --local-dir {folder}')


def data_folder(task: DataCompTask, data_root: str) -> str:
    """The folder ``task`` is read from: ``<data_root>/<task.folder>``; for WinoGAViL, when that
    folder is missing, the ``datasets`` cache of DataComp's own download
    (``<data_root>/hf_cache/nlphuji___winogavil``) if it exists."""
    folder = osp.join(data_root, task.folder)
    if task.family == 'winogavil' and not osp.isdir(folder):
        cache = osp.join(data_root, 'hf_cache', task.repo.replace('/', '___'))
        if osp.isdir(cache):
            return cache
    return folder


def missing_data(task: DataCompTask, folder: str) -> str:
    """What ``folder`` lacks to evaluate ``task`` (``''`` when nothing): a webdataset test set
    needs ``test/nshards.txt``, WinoGAViL a test-split parquet or arrow table."""
    if task.family == 'winogavil':
        from ..datasets.winogavil import find_winogavil_tables
        return '' if find_winogavil_tables(folder)[1] else 'a test-split parquet / arrow table'
    return '' if osp.isfile(osp.join(folder, 'test', 'nshards.txt')) else 'test/nshards.txt'


# ------------------------------------------------------------------------------------ configs
CONFIG_DIR = osp.join('configs', 'vitamin', 'datacomp')
MODEL_BASE = '../clip_vitamin-large_zeroshot-cls_in1k.py'


def family_config(family: str) -> str:
    """The text of the evaluation config of ``family``, written from :data:`TASKS`."""
    info = FAMILIES[family]
    tasks = [t for t in TASKS if t.family == family]
    first = tasks[0]
    about = textwrap.wrap(f'DataComp zero-shot suite, {info["about"]}.', 96)
    lines = ['# ' + line for line in about] + [
        '# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the',
        '# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.',
        '# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool',
        '# swaps in the model of the config it is given. Run every task with',
        '#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR',
        f'# or this family\'s first task ({first.name}) alone with',
        f'#   python tools/test.py {CONFIG_DIR}/{family}.py CKPT',
        f"_base_ = ['{MODEL_BASE}']",
        '',
        "datacomp_root = 'data/datacomp'",
        '# every task of this family: DataComp key, name, dataset folder, metric',
        'datacomp_tasks = [',
    ]
    for t in tasks:
        lines += [f'    dict(key={t.key!r},',
                  f'         name={t.name!r}, folder={t.folder!r},',
                  f'         repo={t.repo!r},',
                  f'         metric={t.metric!r}, group={t.group!r}, '
                  f'in_average={t.in_average!r}),']
    games = family == 'winogavil'  # one sample is a game of 5-12 images
    lines += [
        ']',
        f'datacomp_metric = {info["metric"]!r}  # the key of the number the average takes',
        '',
        'test_dataloader = dict(',
        '    batch_size=8,  # games (5-12 images each)' if games else '    batch_size=64,',
        '    num_workers=4,',
        '    persistent_workers=False,',
        "    sampler=dict(type='DefaultSampler', shuffle=False),",
        f"    collate_fn=dict(type='{'pseudo_collate' if games else 'default_collate'}'),",
        '    dataset=dict(',
        "        _delete_=True,",
        f"        type='{'WinoGAViLDataset' if games else 'WdsBenchmarkDataset'}',",
        f"        data_root=datacomp_root + '/{first.folder}',",
        f"        task={first.key!r},",
        f"        hub_repo={first.repo!r},",
    ] + ([] if games else [
        f"        with_metadata={family.startswith(('wilds_worst', 'fairness'))!r},"]) + [
        "        pipeline={{_base_.test_pipeline}}))",
        f'test_evaluator = {_py(dict(_delete_=True, **info["evaluator"]))}',
    ]
    loop = dict(retrieval='ImageTextRetrievalLoop', winogavil='WinoGAViLTestLoop').get(
        family, 'ZeroShotTestLoop')
    lines.append(f"test_cfg = dict(type='{loop}')")
    return '\n'.join(lines) + '\n'


def _py(value) -> str:
    """A dict of plain values as config source (``dict(a=1, ...)``)."""
    if isinstance(value, dict):
        return 'dict(' + ', '.join(f'{k}={_py(v)}' for k, v in value.items()) + ')'
    if isinstance(value, tuple):
        return '(' + ', '.join(_py(v) for v in value) + (', )' if len(value) == 1 else ')')
    return repr(value)


def write_configs(repo_root: str) -> List[str]:
    """Write every family's config under ``<repo_root>/configs/vitamin/datacomp/``; returns the
    paths written."""
    import os
    out = osp.join(repo_root, CONFIG_DIR)
    os.makedirs(out, exist_ok=True)
    paths = []
    for family in FAMILIES:
        path = osp.join(out, f'{family}.py')
        with open(path, 'w') as f:
            f.write(family_config(family))
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------ metrics
def _labels(data_samples: Sequence[dict]) -> List[int]:
    return [int(np.asarray(ds['gt_label']).reshape(-1)[0]) for ds in data_samples]


class _PredictionMetric(BaseMetric):
    """Collects (scores, true label[, metadata]) of each sample."""

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds, label in zip(data_samples, _labels(data_samples)):
            scores = ds['pred_score']
            scores = scores.float().cpu() if torch.is_tensor(scores) else torch.as_tensor(scores)
            meta = ds.get('wds_metadata')
            self.results.append((scores, label, None if meta is None else np.asarray(meta)))

    def _arrays(self, results):
        scores = torch.stack([r[0] for r in results])
        labels = torch.as_tensor([r[1] for r in results])
        return scores, labels


@METRICS.register_module()
class MeanPerClassRecall(_PredictionMetric):
    """Mean over the classes with test samples of each class's recall (percent), as
    scikit-learn's ``balanced_accuracy_score``. Key: ``mean_per_class_recall``."""

    default_prefix = ''

    def compute_metrics(self, results: list) -> Dict[str, float]:
        scores, labels = self._arrays(results)
        pred = scores.argmax(dim=1)
        recalls = [(pred[labels == c] == c).float().mean().item() for c in labels.unique()]
        return {'mean_per_class_recall': 100.0 * float(np.mean(recalls))}


@METRICS.register_module()
class MacroF1(_PredictionMetric):
    """F1 averaged over the classes present in the ground truth (percent), as WILDS'
    ``F1(average='macro')``: a class only ever predicted, never true, is not averaged.
    Key: ``macro_f1``."""

    default_prefix = ''

    def compute_metrics(self, results: list) -> Dict[str, float]:
        from sklearn.metrics import f1_score
        scores, labels = self._arrays(results)
        pred = scores.argmax(dim=1).numpy()
        y = labels.numpy()
        return {'macro_f1': 100.0 * float(f1_score(y, pred, average='macro',
                                                   labels=np.unique(y)))}


@METRICS.register_module()
class WorstGroupAccuracy(_PredictionMetric):
    """Top-``topk`` accuracy within each group, the lowest over the groups with samples
    (percent). The group of a sample is column ``column`` of its metadata vector
    (``wds_metadata``, the shards' ``.npy`` member). ``exclude`` lists group ids left out.

    Keys: ``worst_group/top<k>`` and ``worst_group/top<k>_group<g>`` for every group, and the
    overall ``worst_group/top<k>_all``.
    """

    default_prefix = 'worst_group'

    def __init__(self, topk: int = 1, column: int = 0, exclude: Sequence[int] = (), **kwargs):
        super().__init__(**kwargs)
        self.topk, self.column, self.exclude = int(topk), int(column), set(exclude)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        scores, labels = self._arrays(results)
        if any(r[2] is None for r in results):
            raise ValueError('WorstGroupAccuracy: a sample has no metadata (wds_metadata); '
                             'build the dataset with with_metadata=True.')
        groups = np.array([int(r[2].reshape(-1)[self.column]) for r in results])
        k = min(self.topk, scores.shape[1])
        hit = (scores.topk(k, dim=1).indices == labels[:, None]).any(dim=1).numpy()
        name = f'top{self.topk}'
        out = {f'{name}_all': 100.0 * float(hit.mean())}
        per_group = {}
        for g in np.unique(groups):
            if int(g) not in self.exclude:
                per_group[int(g)] = 100.0 * float(hit[groups == g].mean())
                out[f'{name}_group{int(g)}'] = per_group[int(g)]
        out[name] = min(per_group.values())
        return out


@METRICS.register_module()
class ImageTextRecall(BaseMetric):
    """Recall@k both ways over images with several captions (percent).

    Each processed sample carries ``image_feat`` (E,) and ``text_feats`` (n_captions, E), both
    L2-normalised. Image-to-text: an image is found at k when any of its captions is among the
    k captions most similar to it; text-to-image: a caption is found when its image is among the
    k most similar images. Keys: ``i2t_recall@k``, ``t2i_recall@k`` and ``mean_recall@1`` (their
    mean at k=1, DataComp's score).
    """

    default_prefix = 'retrieval'

    def __init__(self, topk: Sequence[int] = (1, 5, 10), **kwargs):
        super().__init__(**kwargs)
        self.topk = tuple(int(k) for k in topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            self.results.append((ds['image_feat'].float().cpu(), ds['text_feats'].float().cpu()))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        images = torch.stack([r[0] for r in results])
        texts = torch.cat([r[1] for r in results])
        owner = torch.cat([torch.full((len(r[1]), ), i) for i, r in enumerate(results)])
        sim = texts @ images.t()  # (captions, images)
        out = {}
        for k in self.topk:
            t2i = sim.topk(min(k, sim.shape[1]), dim=1).indices
            found_t = (t2i == owner[:, None]).any(dim=1).float().mean().item()
            i2t = sim.t().topk(min(k, sim.shape[0]), dim=1).indices
            found_i = (owner[i2t] == torch.arange(len(images))[:, None]).any(dim=1)
            out[f't2i_recall@{k}'] = 100.0 * found_t
            out[f'i2t_recall@{k}'] = 100.0 * found_i.float().mean().item()
        if 1 in self.topk:
            out['mean_recall@1'] = (out['t2i_recall@1'] + out['i2t_recall@1']) / 2
        return out


def winogavil_prompt(cue: str) -> str:
    """The text a WinoGAViL cue is embedded as (DataComp's): the cue lower-cased after "A", or
    after "An" when it starts with a vowel (``'Moon'`` -> ``'A moon'``, ``'ice'`` -> ``'An ice'``)."""
    cue = cue.lower()
    return f'{"An" if cue[:1] in "aeiou" else "A"} {cue}'


@METRICS.register_module()
class WinoGAViLJaccard(BaseMetric):
    """WinoGAViL's score (percent), DataComp's computation.

    Each processed sample is a game: ``similarities`` (one per candidate image: the cosine of the
    cue prompt and the image), ``candidates`` and ``associations``. The n images most similar to
    the cue are picked, n the number of candidates among the associations, and the game scores
    the Jaccard index of the picked and the true sets (scikit-learn's ``jaccard_score`` on the
    two masks, as DataComp). Ties: the images are ranked by a stable ascending sort and the last n
    are picked, so of equal similarities the later candidate is picked first. DataComp keeps the
    last n of ``np.argsort``'s default sort, which is not stable (numpy 2 on an AVX-512 CPU orders
    ties differently), so its choice among equal similarities depends on the machine; distinct
    images rarely tie.

    Keys: ``avg_jaccard_score`` (all games) and ``jaccard_score_<g>``, the mean over the games
    with 5, 6, 10 or 12 candidates, with 5-6 (``5-6``: at most 6) and with 10-12 (``10-12``: at
    least 10; DataComp's main metric); a group without games is not reported.
    """

    default_prefix = 'winogavil'
    GROUPS = (('5', lambda n: n == 5), ('6', lambda n: n == 6), ('10', lambda n: n == 10),
              ('12', lambda n: n == 12), ('5-6', lambda n: n <= 6), ('10-12', lambda n: n >= 10))

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        from sklearn.metrics import jaccard_score
        for ds in data_samples:
            sims = ds['similarities']
            sims = (sims.float().cpu() if torch.is_tensor(sims) else torch.as_tensor(sims))
            sims = sims.numpy()
            truth = np.isin(ds['candidates'], ds['associations'])
            if len(sims) != len(truth) or not truth.any():
                raise ValueError(f'WinoGAViLJaccard: game {ds.get("game")} has {len(sims)} '
                                 f'similarities for {len(truth)} candidates and '
                                 f'{int(truth.sum())} association(s) among them.')
            picked = np.zeros(len(sims), dtype=bool)
            picked[np.argsort(sims, kind='stable')[len(sims) - int(truth.sum()):]] = True
            self.results.append((len(sims), float(jaccard_score(truth, picked))))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        sizes = np.array([r[0] for r in results])
        scores = 100.0 * np.array([r[1] for r in results])
        out = {'avg_jaccard_score': float(scores.mean())}
        for name, member in self.GROUPS:
            chosen = np.array([member(n) for n in sizes], dtype=bool)
            if chosen.any():
                out[f'jaccard_score_{name}'] = float(scores[chosen].mean())
        return out


# ------------------------------------------------------------------------------- test loops
def _bare(model):
    return getattr(model, 'module', model)  # the model inside a DDP wrapper


@torch.no_grad()
def zero_shot_weights(model, classes: Sequence[str], templates: Sequence[str],
                      batch_size: int = 1000) -> torch.Tensor:
    """(E, num_classes) zero-shot classifier of a ``ContrastiveCLIP`` for the class names and
    templates a dataset folder gives (:meth:`ContrastiveCLIP.embed_prompts`, the computation of
    its own ``class_embeddings``)."""
    from ..models.multimodal.clip import zero_shot_prompts
    classes, templates = zero_shot_prompts(list(classes), list(templates))
    tokens = model.tokenizer([t(c) for c in classes for t in templates])
    return model.embed_prompts(tokens, len(classes), next(model.parameters()).device, batch_size)


class _EmbeddingTestLoop(TestLoop):
    """mmengine's test loop, with each batch embedded by the model's public feature methods
    (``embed``, in fp32) instead of its ``test_step``; ``prepare`` runs before the first batch
    (after the ``before_test`` hooks, e.g. an EMA swap)."""

    @torch.no_grad()
    def run_iter(self, idx, data_batch) -> None:
        model = _bare(self.runner.model)
        if idx == 0:
            self.prepare(model)
        self.runner.call_hook('before_test_iter', batch_idx=idx, data_batch=data_batch)
        samples = self.embed(model, data_batch)
        self.evaluator.process(data_samples=samples, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=idx, data_batch=data_batch,
                              outputs=samples)

    def prepare(self, model) -> None:
        pass


@LOOPS.register_module()
class ZeroShotTestLoop(_EmbeddingTestLoop):
    """Zero-shot classification with the class names and templates of the test dataset
    (its ``metainfo['classes']`` / ``metainfo['templates']``, e.g. :class:`WdsBenchmarkDataset`):
    logits = ``exp(logit_scale)`` x normalised image features x :func:`zero_shot_weights`;
    each data sample gets ``pred_score`` (softmax) and ``pred_label``."""

    def prepare(self, model) -> None:
        meta = self.dataloader.dataset.metainfo
        if not meta.get('classes') or not meta.get('templates'):
            raise ValueError('ZeroShotTestLoop: the test dataset gives no class names and '
                             'templates (metainfo classes / templates).')
        self.weights = zero_shot_weights(model, meta['classes'], meta['templates'])

    @torch.no_grad()
    def embed(self, model, data_batch) -> list:
        data = model.data_preprocessor(data_batch, False)
        image = model.extract_image_feat(data['inputs'])
        scores = (model.scale() * image @ self.weights.to(image.device)).softmax(dim=-1)
        for ds, score in zip(data['data_samples'], scores):
            ds.set_pred_score(score).set_pred_label(score.argmax(dim=-1, keepdim=True))
        return data['data_samples']


@LOOPS.register_module()
class ImageTextRetrievalLoop(_EmbeddingTestLoop):
    """The test loop of an image-text retrieval set: every batch's images are embedded with
    the model's ``extract_image_feat`` and every sample's captions (``captions``) with
    ``extract_text_feat``; the evaluator receives ``image_feat`` / ``text_feats``."""

    @torch.no_grad()
    def embed(self, model, data_batch) -> list:
        data = model.data_preprocessor(data_batch, False)
        samples = data['data_samples']
        image = model.extract_image_feat(data['inputs'])
        captions = [list(ds.captions) for ds in samples]
        if any(not c for c in captions):
            raise ValueError('ImageTextRetrievalLoop: a sample has no caption.')
        tokens = model.tokenizer([c for caps in captions for c in caps]).to(image.device)
        text = model.extract_text_feat(tokens)
        start = 0
        for ds, feat, caps in zip(samples, image, captions):
            ds.set_field(feat, 'image_feat')
            ds.set_field(text[start:start + len(caps)], 'text_feats')
            start += len(caps)
        return samples


@LOOPS.register_module()
class WinoGAViLTestLoop(_EmbeddingTestLoop):
    """The test loop of WinoGAViL (:class:`~visionllama_mm.datasets.WinoGAViLDataset`, batches
    of games by ``pseudo_collate``): each game's candidate images are embedded with
    ``extract_image_feat`` and its cue, as :func:`winogavil_prompt` writes it, with
    ``extract_text_feat``; the evaluator receives ``similarities``, the cosine of the cue and each
    image (the features are L2-normalised). In fp32 like the other tasks; DataComp embeds the
    WinoGAViL games under ``torch.cuda.amp.autocast`` (fp16 on a GPU), which can move a game's
    ranking where two similarities are within fp16 rounding of each other."""

    @torch.no_grad()
    def embed(self, model, data_batch) -> list:
        games, samples = data_batch['inputs'], data_batch['data_samples']
        if torch.is_tensor(games) or any(not torch.is_tensor(g) or g.dim() != 4 for g in games):
            raise ValueError('WinoGAViLTestLoop: a batch must be a list of games, each its '
                             'candidate images stacked (WinoGAViLDataset with '
                             "collate_fn=dict(type='pseudo_collate')).")
        data = model.data_preprocessor(dict(inputs=[img for g in games for img in g]), False)
        images = model.extract_image_feat(data['inputs'])
        tokens = model.tokenizer([winogavil_prompt(ds.cue) for ds in samples])
        cues = model.extract_text_feat(tokens.to(images.device))
        for ds, cue, feats in zip(samples, cues, images.split([len(g) for g in games])):
            ds.set_field(feats @ cue, 'similarities')
        return samples
