"""The DataComp zero-shot suite: its task table, the generated configs, the webdataset test sets
(written here in clip_benchmark's real layout), WinoGAViL's tables (parquet and the `datasets`
arrow cache, written here with pyarrow in the `datasets` schema) and the metrics mmpretrain lacks,
each against a hand computation."""
import io
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import balanced_accuracy_score, f1_score

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import WdsBenchmarkDataset, WinoGAViLDataset
from visionllama_mm.evaluation.datacomp import (CONFIG_DIR, FAMILIES, TASKS, ImageTextRecall,
                                                MacroF1, MeanPerClassRecall, WinoGAViLJaccard,
                                                WinoGAViLTestLoop, WorstGroupAccuracy, data_folder,
                                                family_config, missing_data, task_by_name,
                                                winogavil_prompt, zero_shot_weights)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CLIP = osp.join(REPO, 'configs', 'vitamin', 'clip_vitamin-tiny_1xb64-300it_digits.py')

# the fixture's tasks: folder -> what it holds
FIXTURE_TASKS = ('cifar10', 'vtab/pets', 'retrieval/flickr_1k_test_image_text_retrieval',
                 'wilds/fmow', 'fairness/dollar_street', 'misc/winogavil')
# WinoGAViL fixture games: cue, candidates, associations (5, 6, 10, 12 and 10 candidates)
WINO_GAMES = [
    ('Moon', ['wolf', 'night', 'cheese', 'sun', 'lamp'], ['wolf', 'night']),
    ('ice', ['cube', 'rink', 'fire', 'penguin', 'desert', 'tea'], ['cube', 'rink', 'penguin']),
    ('Ocean', [f'c{i}' for i in range(10)], ['c1', 'c4', 'c7']),
    ('train', [f'd{i}' for i in range(12)], ['d0', 'd5', 'd6', 'd11']),
    ('umbrella', [f'e{i}' for i in range(10)], ['e2', 'e3']),
]


def _png(rng: np.random.Generator, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, 'PNG')
    return buf.getvalue()


def _npy(vector) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(vector, dtype=np.int64))
    return buf.getvalue()


def _write_shards(folder: str, samples: list, per_shard: int = 4) -> None:
    """``samples``: dicts of member extension -> bytes, written as test/<i>.tar + nshards.txt."""
    os.makedirs(osp.join(folder, 'test'), exist_ok=True)
    shards = [samples[i:i + per_shard] for i in range(0, len(samples), per_shard)]
    for s, shard in enumerate(shards):
        with tarfile.open(osp.join(folder, 'test', f'{s}.tar'), 'w') as tar:
            for i, sample in enumerate(shard):
                for ext, data in sample.items():
                    info = tarfile.TarInfo(f's{s:03d}_{i:04d}.{ext}')
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    with open(osp.join(folder, 'test', 'nshards.txt'), 'w') as f:
        f.write(f'{len(shards)}\n')


def _write_lines(path: str, lines) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def _wino_schema():
    import pyarrow as pa
    image = pa.struct([('bytes', pa.binary()), ('path', pa.string())])  # datasets.Image()
    names = pa.list_(pa.string())
    return pa.schema([('cue', pa.string()), ('candidate_images', pa.list_(image)),
                      ('associations', names), ('candidates', names),
                      ('num_associations', pa.int64()), ('num_candidates', pa.int64()),
                      ('ID', pa.int64())])


def _wino_rows(images: list) -> dict:
    """The columns of :data:`WINO_GAMES` with ``images`` (one list of Image structs a game)."""
    return dict(cue=[g[0] for g in WINO_GAMES], candidate_images=images,
                associations=[g[2] for g in WINO_GAMES], candidates=[g[1] for g in WINO_GAMES],
                num_associations=[len(g[2]) for g in WINO_GAMES],
                num_candidates=[len(g[1]) for g in WINO_GAMES],
                ID=[100 + i for i in range(len(WINO_GAMES))])


def write_winogavil_parquet(folder: str, seed: int = 0, drop: str = '') -> dict:
    """:data:`WINO_GAMES` as the Hub's parquet conversion writes them (images embedded, two games
    a row group) under ``folder/default/test/0000.parquet``; returns game index -> PNG bytes
    of its candidates. ``drop``: a column left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    rng = np.random.default_rng(seed)
    pngs = {i: [_png(rng) for _ in game[1]] for i, game in enumerate(WINO_GAMES)}
    images = [[dict(bytes=b, path=f'{name}.png') for b, name in zip(pngs[i], game[1])]
              for i, game in enumerate(WINO_GAMES)]
    table = pa.table(_wino_rows(images), schema=_wino_schema())
    if drop:
        table = table.drop_columns([drop])
    os.makedirs(osp.join(folder, 'default', 'test'), exist_ok=True)
    pq.write_table(table, osp.join(folder, 'default', 'test', '0000.parquet'), row_group_size=2)
    return pngs


def write_winogavil_arrow_cache(root: str, pngs: dict, missing: str = '') -> str:
    """The same games as the ``datasets`` cache holds them after DataComp's download: an Arrow
    IPC stream whose images are paths to extracted files (absolute, one relative); returns the
    dataset's cache folder. ``missing``: a candidate whose image file is not written."""
    import pyarrow as pa
    cache = osp.join(root, 'hf_cache', 'nlphuji___winogavil')
    table_dir = osp.join(cache, 'default', '0.0.0', '3f2a9c')
    image_dir = osp.join(table_dir, 'winogavil_images')
    os.makedirs(image_dir, exist_ok=True)
    images = []
    for i, game in enumerate(WINO_GAMES):
        images.append([])
        for name, data in zip(game[1], pngs[i]):
            path = osp.join(image_dir, f'{name}.png')
            if name != missing:
                with open(path, 'wb') as f:
                    f.write(data)
            relative = (i, name) == (0, 'wolf')
            images[-1].append(dict(bytes=None, path=osp.relpath(path, table_dir) if relative
                                   else path))
    table = pa.table(_wino_rows(images), schema=_wino_schema())
    with pa.ipc.new_stream(osp.join(table_dir, 'winogavil-test.arrow'), table.schema) as writer:
        writer.write_table(table, max_chunksize=3)
    return cache


def write_datacomp_fixture(root: str, seed: int = 0) -> dict:
    """Tiny test sets of five tasks in clip_benchmark's webdataset layout under ``root``
    (the folders DataComp's download script writes); returns folder -> sample count."""
    rng = np.random.default_rng(seed)
    counts = {}
    classes = ['cat', 'dog', 'ship', 'truck', 'horse', 'frog', 'bird']
    templates = ['a photo of a {c}.', 'a blurry photo of the {c}.']
    for key in FIXTURE_TASKS:
        task = task_by_name(key)
        folder = osp.join(root, task.folder)
        if task.family == 'winogavil':
            write_winogavil_parquet(folder, seed)
            counts[task.folder] = len(WINO_GAMES)
            continue
        if task.family == 'retrieval':
            samples = [dict(png=_png(rng), txt='\n'.join(
                f'caption {j} of picture {i} with a {classes[(i + j) % 7]}' for j in range(5))
                .encode()) for i in range(6)]
            _write_shards(folder, samples)
            _write_lines(osp.join(folder, 'dataset_type.txt'), ['retrieval'])
        else:
            n = 10
            labels = rng.integers(0, len(classes), n)
            samples = []
            for i, label in enumerate(labels):
                sample = dict(png=_png(rng), cls=f'{label}'.encode())
                if task.family in ('wilds_worst_region', 'fairness_top5_worst_income'):
                    sample['npy'] = _npy([i % 3, 2016, label])  # group, year, y
                samples.append(sample)
            _write_shards(folder, samples)
            _write_lines(osp.join(folder, 'classnames.txt'), classes)
            _write_lines(osp.join(folder, 'zeroshot_classification_templates.txt'), templates)
        counts[task.folder] = len(samples)
    return counts


@pytest.fixture(scope='module')
def datacomp_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('datacomp'))
    write_datacomp_fixture(root)
    return root


# ------------------------------------------------------------------------------------- table
def test_table_has_datacomps_40_tasks_and_38_in_the_average():
    assert len(TASKS) == 40 and len({t.key for t in TASKS}) == 40
    counted = [t for t in TASKS if t.in_average]
    assert len(counted) == 38
    assert {t.name for t in TASKS if not t.in_average} == {'FairFace', 'UTKFace'}
    groups = {g: sorted(t.name for t in counted if t.group == g)
              for g in ('imagenet', 'shift', 'vtab', 'retrieval')}
    assert groups['imagenet'] == ['ImageNet 1k']
    assert len(groups['shift']) == 6 and 'ObjectNet' in groups['shift']
    assert len(groups['vtab']) == 13 and 'SUN397' in groups['vtab']
    assert groups['retrieval'] == ['Flickr', 'MSCOCO', 'WinoGAViL']
    mpcr = sorted(t.name for t in TASKS if t.metric == 'mean_per_class_recall')
    assert mpcr == ['Caltech-101', 'FGVC Aircraft', 'Oxford Flowers-102', 'Oxford-IIIT Pet']
    assert {t.name: t.metric for t in TASKS if t.metric not in ('acc1', 'mean_per_class_recall',
                                                                '')} == {
        'Flickr': 'mean_recall@1', 'MSCOCO': 'mean_recall@1', 'WinoGAViL': 'jaccard_score_10-12',
        'iWildCam': 'F1-macro_all', 'FMoW': 'acc_worst_region', 'Dollar Street': 'acc_top5_wg',
        'GeoDE': 'acc_wg'}
    # folders as DataComp's download_evalsets.py names them
    assert task_by_name('vtab/pets').folder == 'wds_vtab-pets_test'
    assert task_by_name('Dollar Street').folder == 'wds_dollar_street_test'
    assert task_by_name('wilds/fmow').repo == 'djghosh/wds_wilds-fmow_test'
    assert all(t.supported for t in TASKS if t.in_average)
    assert task_by_name('WinoGAViL').family == 'winogavil'
    with pytest.raises(KeyError, match="DataComp has no task 'cifar11'"):
        task_by_name('cifar11')


def test_generated_configs_equal_what_the_table_gives():
    families = {t.family for t in TASKS if t.supported}
    assert families == set(FAMILIES)
    on_disk = sorted(os.listdir(osp.join(REPO, CONFIG_DIR)))
    assert on_disk == sorted(f'{f}.py' for f in FAMILIES)
    for family in FAMILIES:
        with open(osp.join(REPO, CONFIG_DIR, f'{family}.py')) as f:
            assert f.read() == family_config(family), \
                f'{family}.py differs from the table: run datacomp_eval.py --write-configs'
    # every supported task is in exactly one family config
    listed = [line for f in FAMILIES for line in family_config(f).splitlines()
              if line.startswith('    dict(key=')]
    assert len(listed) == sum(t.supported for t in TASKS) == 38


# ---------------------------------------------------------------------------------- metrics
def _samples(scores, labels, groups=None):
    out = []
    for i, (s, y) in enumerate(zip(scores, labels)):
        d = dict(pred_score=torch.as_tensor(s, dtype=torch.float32), gt_label=torch.tensor([y]))
        if groups is not None:
            d['wds_metadata'] = np.array([groups[i], 7])
        out.append(d)
    return out


def _evaluate(metric, samples):
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def test_classification_metrics_against_scikit_learn_and_by_hand():
    rng = np.random.default_rng(1)
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 4, 4, 4, 4, 0])  # class 3 has no sample
    scores = rng.random((len(labels), 5))
    pred = scores.argmax(1)
    out = _evaluate(MeanPerClassRecall(), _samples(scores, labels))
    assert out['mean_per_class_recall'] == pytest.approx(
        100 * balanced_accuracy_score(labels, pred))
    by_hand = np.mean([np.mean(pred[labels == c] == c) for c in (0, 1, 2, 4)])
    assert out['mean_per_class_recall'] == pytest.approx(100 * by_hand)
    out = _evaluate(MacroF1(), _samples(scores, labels))
    assert out['macro_f1'] == pytest.approx(
        100 * f1_score(labels, pred, average='macro', labels=[0, 1, 2, 4]))

    # worst group: 3 samples in group 0 (2 right), 2 in group 1 (both right), 1 in group 5
    scores = torch.eye(4)[[0, 1, 2, 3, 0, 1]] + 0.01 * torch.arange(4)
    labels = [0, 1, 3, 3, 0, 2]
    groups = [0, 0, 0, 1, 1, 5]
    out = _evaluate(WorstGroupAccuracy(topk=1), _samples(scores, labels, groups))
    assert out['top1_group0'] == pytest.approx(100 * 2 / 3)
    assert out['top1_group1'] == 100 and out['top1_group5'] == 0
    assert out['top1'] == 0 and out['top1_all'] == pytest.approx(100 * 4 / 6)
    out = _evaluate(WorstGroupAccuracy(topk=1, exclude=[5]), _samples(scores, labels, groups))
    assert out['top1'] == pytest.approx(100 * 2 / 3)
    # top-2: the second-best score of each row is class 3 (the 0.01 * index tie-break)
    out = _evaluate(WorstGroupAccuracy(topk=2), _samples(scores, labels, groups))
    assert out['top2_group0'] == 100 and out['top2_group5'] == 0
    with pytest.raises(ValueError, match='has no metadata'):
        _evaluate(WorstGroupAccuracy(), _samples(scores, labels))


def test_image_text_recall_by_hand():
    # 3 images, captions 2 / 1 / 2; unit vectors so similarities are easy to read
    img = torch.eye(3)
    texts = [torch.tensor([[1., 0, 0], [0, 0.9, 0.1]]),  # image 0: one caption near image 1
             torch.tensor([[0.2, 0.8, 0]]),               # image 1: nearest is image 1
             torch.tensor([[0.9, 0, 0.1], [0, 0, 1.]])]   # image 2: first caption nearest image 0
    metric = ImageTextRecall(topk=(1, 2))
    metric.process(None, [dict(image_feat=i, text_feats=t) for i, t in zip(img, texts)])
    out = metric.compute_metrics(metric.results)
    # text -> image @1: captions right: 0a yes, 0b no, 1 yes, 2a no, 2b yes -> 3 / 5
    assert out['t2i_recall@1'] == pytest.approx(60)
    # image -> text @1: image 0's best caption is 0a (1.0 vs 2a 0.9): yes; image 1: 0b (0.9) vs
    # 1 (0.8): no; image 2: 2b (1.0): yes -> 2 / 3
    assert out['i2t_recall@1'] == pytest.approx(100 * 2 / 3)
    assert out['mean_recall@1'] == pytest.approx((60 + 100 * 2 / 3) / 2)
    # @2: every image finds a caption; caption 0b's two nearest images are 1 and 2 -> 4 / 5
    assert out['i2t_recall@2'] == 100 and out['t2i_recall@2'] == pytest.approx(80)


# ---------------------------------------------------------------------------------- dataset
def test_wds_dataset_reads_the_clip_benchmark_layout(datacomp_root):
    folder = osp.join(datacomp_root, 'wds_wilds-fmow_test')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    ds = WdsBenchmarkDataset(folder, task='wilds/fmow', with_metadata=True, pipeline=pipeline)
    assert len(ds) == 10 and ds.metainfo['classes'][:2] == ['cat', 'dog']
    assert ds.metainfo['templates'] == ['a photo of a {}.', 'a blurry photo of the {}.']
    item = ds[3]
    assert tuple(item['inputs'].shape) == (3, 32, 32)
    sample = item['data_samples']
    assert sample.wds_metadata.tolist()[:2] == [0, 2016]
    assert int(sample.gt_label) == sample.wds_metadata[2]
    # images in shard order: item 3 is the 4th image of shard 0, decoded as BGR
    with tarfile.open(osp.join(folder, 'test', '0.tar')) as tar:
        png = tar.extractfile('s000_0003.png').read()
    rgb = np.asarray(Image.open(io.BytesIO(png)))
    assert torch.equal(item['inputs'], torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1))

    retrieval = WdsBenchmarkDataset(osp.join(datacomp_root, 'wds_flickr30k'),
                                    pipeline=pipeline)
    assert retrieval.dataset_type == 'retrieval' and len(retrieval) == 6
    assert retrieval[5]['data_samples'].captions[0] == 'caption 0 of picture 5 with a frog'


def test_missing_dataset_folder_names_it_and_the_download_command(tmp_path):
    folder = str(tmp_path / 'wds_cars_test')
    with pytest.raises(FileNotFoundError) as err:
        WdsBenchmarkDataset(folder, task='cars', hub_repo='djghosh/wds_cars_test')
    assert (f'the dataset folder {folder} is missing. Download it with: huggingface-cli '
            f'download djghosh/wds_cars_test --repo-type dataset --local-dir {folder}'
            ) in str(err.value)
    assert 'download_evalsets.py' in str(err.value)


def test_zero_shot_weights_equal_the_models_own_classifier():
    from mmengine.config import Config

    from visionllama_mm.registry import MODELS
    cfg = Config.fromfile(TINY_CLIP)
    classes, templates = ['cat', 'dog', 'ship'], ['a photo of a {}.', 'the {} itself']
    cfg.model.zero_shot = dict(classes=classes, templates=templates)
    torch.manual_seed(0)
    model = MODELS.registries()[0].build(cfg.model).eval()
    torch.testing.assert_close(zero_shot_weights(model, classes, templates, batch_size=4),
                               model.class_embeddings('cpu'), rtol=0, atol=1e-6)


# -------------------------------------------------------------------------------- WinoGAViL
PACK = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _bgr(png: bytes) -> torch.Tensor:
    rgb = np.asarray(Image.open(io.BytesIO(png)))
    return torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)


def test_winogavil_reads_the_parquet_conversion_and_the_datasets_cache(tmp_path):
    root, task = str(tmp_path), task_by_name('misc/winogavil')
    folder = osp.join(root, 'winogavil')
    pngs = write_winogavil_parquet(folder)
    assert data_folder(task, root) == folder and missing_data(task, folder) == ''
    ds = WinoGAViLDataset(folder, pipeline=PACK)
    assert ds.kind == 'parquet' and len(ds) == len(WINO_GAMES)
    for i in (0, 3, 2, 4):  # row groups of two games: 0, 1, 1, 2
        item, (cue, candidates, associations) = ds[i], WINO_GAMES[i]
        sample = item['data_samples']
        assert (sample.cue, sample.candidates, sample.associations, sample.game) == (
            cue, candidates, associations, 100 + i)
        assert tuple(item['inputs'].shape) == (len(candidates), 3, 32, 32)
        for x, png in zip(item['inputs'], pngs[i]):  # each candidate's own image, as BGR
            assert torch.equal(x, _bgr(png))

    # DataComp's download: only the datasets cache, an arrow stream of image paths
    other = str(tmp_path / 'datacomp')
    cache = write_winogavil_arrow_cache(other, pngs)
    assert data_folder(task, other) == cache and missing_data(task, cache) == ''
    arrow = WinoGAViLDataset(cache, pipeline=PACK)
    assert arrow.kind == 'arrow' and arrow.files == [
        osp.join(cache, 'default', '0.0.0', '3f2a9c', 'winogavil-test.arrow')]
    for i in range(len(WINO_GAMES)):  # game 0's first image is a relative path
        assert arrow[i]['data_samples'].candidates == WINO_GAMES[i][1]
        for x, png in zip(arrow[i]['inputs'], pngs[i]):
            assert torch.equal(x, _bgr(png))


def test_winogavil_table_errors_name_the_file_and_what_is_wrong(tmp_path):
    folder = str(tmp_path / 'winogavil')
    with pytest.raises(FileNotFoundError) as err:
        WinoGAViLDataset(folder)
    assert (f'the dataset folder {folder} is missing. Download it with: huggingface-cli download '
            'nlphuji/winogavil --repo-type dataset --revision refs/convert/parquet --local-dir '
            f'{folder}') in str(err.value)
    os.makedirs(folder)
    with pytest.raises(FileNotFoundError, match=f'{folder} holds no test-split table'):
        WinoGAViLDataset(folder)
    assert missing_data(task_by_name('WinoGAViL'), folder) == 'a test-split parquet / arrow table'

    pngs = write_winogavil_parquet(folder, drop='associations')
    table = osp.join(folder, 'default', 'test', '0000.parquet')
    with pytest.raises(ValueError) as err:
        WinoGAViLDataset(folder)
    assert str(err.value) == (
        f'WinoGAViLDataset (WinoGAViL): {table} has no column associations (it has: cue, '
        'candidate_images, candidates, num_associations, num_candidates, ID).')
    # the Hub's conversion of only the first part of a split reads, with a warning
    partial = str(tmp_path / 'partial')
    write_winogavil_parquet(partial)
    os.rename(osp.join(partial, 'default', 'test'), osp.join(partial, 'default', 'partial-test'))
    with pytest.warns(UserWarning, match=f'{partial}/default/partial-test is a partial parquet '
                      'conversion'):
        assert len(WinoGAViLDataset(partial)) == len(WINO_GAMES)

    cache = write_winogavil_arrow_cache(str(tmp_path / 'dc'), pngs, missing='rink')
    arrow_dir = osp.join(cache, 'default', '0.0.0', '3f2a9c')
    with pytest.raises(FileNotFoundError) as err:
        WinoGAViLDataset(cache)
    assert (f"{arrow_dir}/winogavil-test.arrow: game 101 (row 1), the image of 'rink' is stored "
            f'as the path {arrow_dir}/winogavil_images/rink.png, which does not exist'
            ) in str(err.value)
    # a second download beside the first: which one is meant is not guessed
    os.makedirs(osp.join(cache, 'default', '0.0.0', '77aa01'))
    os.link(osp.join(arrow_dir, 'winogavil-test.arrow'),
            osp.join(cache, 'default', '0.0.0', '77aa01', 'winogavil-test.arrow'))
    with pytest.raises(ValueError, match='holds test-split arrow files in 2 folders'):
        WinoGAViLDataset(cache)


def test_winogavil_jaccard_and_prompt_by_hand():
    assert [winogavil_prompt(c) for c in ('Moon', 'ice', 'Umbrella', 'x-ray')] == [
        'A moon', 'An ice', 'An umbrella', 'A x-ray']
    names = [f'n{i}' for i in range(12)]
    games = [  # similarities, number of candidates, true associations (indices)
        ([.9, .1, .5, .3, .7], 5, [0, 2]),                       # picks {0, 4}
        ([.2, .5, .5, .5, .5, .1], 6, [1, 2, 3]),                # ties: picks {2, 3, 4}
        ([.1, .9, .2, .3, .8, .1, .2, .7, .3, .1], 10, [1, 4, 7]),  # picks {1, 4, 7}
        ([.9, .1, .1, .8, .2, .1, .1, .7, .6, .1, .1, .1], 12, [1, 2, 5, 6]),  # {0, 3, 7, 8}
        ([.1, .2, .9, .3, .1, .1, .1, .1, .8, .1], 10, [2, 3]),   # picks {2, 8}
    ]
    picked = [{0, 4}, {2, 3, 4}, {1, 4, 7}, {0, 3, 7, 8}, {2, 8}]
    jaccard = [len(p & set(t)) / len(p | set(t)) for p, (_, _, t) in zip(picked, games)]
    assert jaccard == [1 / 3, 1 / 2, 1, 0, 1 / 3]
    metric = WinoGAViLJaccard()
    metric.process(None, [dict(similarities=torch.tensor(s), candidates=names[:n],
                               associations=[names[i] for i in t], game=g)
                          for g, (s, n, t) in enumerate(games)])
    out = metric.compute_metrics(metric.results)
    expected = {'avg_jaccard_score': np.mean(jaccard), 'jaccard_score_5': jaccard[0],
                'jaccard_score_6': jaccard[1], 'jaccard_score_10': np.mean(jaccard[2::2]),
                'jaccard_score_12': jaccard[3], 'jaccard_score_5-6': np.mean(jaccard[:2]),
                'jaccard_score_10-12': np.mean(jaccard[2:])}
    assert out == pytest.approx({k: 100 * v for k, v in expected.items()})
    # a group without games is not reported
    metric = WinoGAViLJaccard()
    metric.process(None, [dict(similarities=torch.tensor(games[0][0]), candidates=names[:5],
                               associations=['n0', 'n2'], game=0)])
    assert set(metric.compute_metrics(metric.results)) == {
        'avg_jaccard_score', 'jaccard_score_5', 'jaccard_score_5-6'}
    with pytest.raises(ValueError, match='game 7 has 5 similarities for 5 candidates and 0 '
                                         'association'):
        metric.process(None, [dict(similarities=torch.zeros(5), candidates=names[:5],
                                   associations=['zz'], game=7)])
    # a batch collated as one tensor (default_collate) is refused before the model runs
    loop = object.__new__(WinoGAViLTestLoop)
    with pytest.raises(ValueError, match="collate_fn=dict\\(type='pseudo_collate'\\)"):
        loop.embed(None, dict(inputs=torch.zeros(2, 5, 3, 8, 8), data_samples=[]))
