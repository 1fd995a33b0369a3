"""tools/analysis_tools/datacomp_eval.py on tiny test sets in clip_benchmark's webdataset layout
(five tasks: top-1, mean per-class recall, retrieval, worst region, top-5 worst income group) and
WinoGAViL's parquet table, with a random-weight tiny ViTamin CLIP: the printed average is the mean
of the printed task numbers, and CIFAR-10's top-1 and WinoGAViL's Jaccard scores equal
computations by hand from the model's features."""
import importlib.util
import io
import json
import os.path as osp
import re
import sys
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ..conftest import REPO, run_tool
from ..evaluation.test_datacomp import FIXTURE_TASKS, TINY_CLIP, WINO_GAMES, write_datacomp_fixture

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'datacomp_eval.py')


def _tiny_clip():
    from mmengine.config import Config

    import visionllama_mm  # noqa: F401
    from visionllama_mm.registry import MODELS
    cfg = Config.fromfile(TINY_CLIP)
    torch.manual_seed(0)
    model = MODELS.registries()[0].build(cfg.model)
    model.init_weights()
    return model.eval()


def _cifar10_top1_by_hand(model, folder: str) -> float:
    """Top-1 of the zero-shot classifier computed step by step: images as the test pipeline
    reads them (BGR, 32 px, the config's mean 87 / std 103), prompts from the folder's files."""
    classes = open(osp.join(folder, 'classnames.txt')).read().split('\n')[:-1]
    templates = open(osp.join(folder, 'zeroshot_classification_templates.txt')).read()
    templates = templates.split('\n')[:-1]
    with torch.no_grad():
        weights = []
        for c in classes:
            prompts = [t.replace('{c}', c) for t in templates]
            text = model.extract_text_feat(model.tokenizer(prompts))
            weights.append(F.normalize(text.mean(0), dim=0))
        weights = torch.stack(weights, dim=1)
        right = total = 0
        for shard in sorted(p for p in (osp.join(folder, 'test', f'{i}.tar') for i in range(3))
                            if osp.isfile(p)):
            with tarfile.open(shard) as tar:
                names = sorted(m.name for m in tar.getmembers())
                for name in [n for n in names if n.endswith('.png')]:
                    rgb = np.asarray(Image.open(io.BytesIO(tar.extractfile(name).read())))
                    label = int(tar.extractfile(name[:-3] + 'cls').read())
                    x = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1).float()
                    x = ((x - 87.0) / 103.0)[None]
                    pred = (model.extract_image_feat(x) @ weights).argmax().item()
                    right, total = right + (pred == label), total + 1
    return 100.0 * right / total


def _winogavil_by_hand(model, folder: str) -> dict:
    """WinoGAViL's scores computed game by game from the table: each candidate image as the test
    pipeline reads it (BGR, the config's mean 87 / std 103), the cue as "A <cue>" / "An <cue>",
    the n most similar images against the n associations, the Jaccard index of the two sets."""
    import pyarrow.parquet as pq
    rows = pq.read_table(osp.join(folder, 'default', 'test', '0000.parquet')).to_pylist()
    by_size = {}
    with torch.no_grad():
        for row in rows:
            cue = row['cue'].lower()
            prompt = ('An ' if cue[0] in 'aeiou' else 'A ') + cue
            text = model.extract_text_feat(model.tokenizer([prompt]))[0]
            x = torch.stack([torch.from_numpy(np.asarray(Image.open(io.BytesIO(
                image['bytes'])))[..., ::-1].copy()).permute(2, 0, 1).float()
                for image in row['candidate_images']])
            sims = model.extract_image_feat((x - 87.0) / 103.0) @ text
            n = len(row['associations'])
            picked = {row['candidates'][j] for j in sims.argsort(stable=True)[-n:].tolist()}
            truth = set(row['associations'])
            by_size.setdefault(len(row['candidates']), []).append(
                100.0 * len(picked & truth) / len(picked | truth))
    every = [s for scores in by_size.values() for s in scores]
    out = {'winogavil/avg_jaccard_score': np.mean(every)}
    out.update({f'winogavil/jaccard_score_{k}': np.mean(v) for k, v in by_size.items()})
    out['winogavil/jaccard_score_5-6'] = np.mean(by_size[5] + by_size[6])
    out['winogavil/jaccard_score_10-12'] = np.mean(by_size[10] + by_size[12])
    return out


def test_datacomp_eval_runs_every_task_kind_and_averages(tmp_path):
    root = str(tmp_path / 'datacomp')
    counts = write_datacomp_fixture(root)
    model = _tiny_clip()
    ckpt = str(tmp_path / 'clip.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'results.json')
    stdout = run_tool([sys.executable, TOOL, TINY_CLIP, ckpt, '--data-root', root, '--num-workers', '0',
                       '--batch-size', '4', '--work-dir', str(tmp_path / 'work'), '--out', out,
                       '--tasks', *FIXTURE_TASKS])
    results = json.load(open(out))
    values = {t['name']: t['value'] for t in results['tasks']}
    assert list(values) == ['CIFAR-10', 'Oxford-IIIT Pet', 'Flickr', 'FMoW', 'Dollar Street',
                            'WinoGAViL']
    # the printed table: one line per task, its value as printed, and the average of those
    printed = {name: float(re.search(rf'^{re.escape(name)}\s+\S+\s+\S+\s+([\d.]+)$', stdout,
                                     re.M).group(1)) for name in values}
    average = float(re.search(r'^Average over 6 of 38 tasks: ([\d.]+)$', stdout, re.M).group(1))
    assert average == pytest.approx(np.mean(list(printed.values())), abs=0.006)
    assert results['average'] == pytest.approx(np.mean(list(values.values())))
    assert results['num_tasks'] == 6 and results['of'] == 38
    assert 'not evaluated' not in stdout and results['left_out'] == []
    # the retrieval column: Flickr and WinoGAViL run, MSCOCO not
    assert results['groups']['Retrieval'] == dict(
        value=pytest.approx((values['Flickr'] + values['WinoGAViL']) / 2), tasks=2, of=3)
    # each task saw every sample of its test set, through its own metric
    metrics = {t['name']: t['metrics'] for t in results['tasks']}
    assert set(metrics['Flickr']) >= {'retrieval/t2i_recall@1', 'retrieval/i2t_recall@10'}
    assert set(metrics['FMoW']) >= {'worst_group/top1_group0', 'worst_group/top1_group2'}
    assert metrics['Dollar Street']['worst_group/top5'] <= metrics['Dollar Street'][
        'worst_group/top5_all']
    assert counts['wds_cifar10_test'] == 10 and counts['winogavil'] == len(WINO_GAMES)
    # CIFAR-10's top-1 by hand from the same weights
    assert values['CIFAR-10'] == pytest.approx(
        _cifar10_top1_by_hand(model, osp.join(root, 'wds_cifar10_test')))
    # WinoGAViL's scores (every group: 5, 6, 10, 12 candidates) by hand from the same weights
    wino = _winogavil_by_hand(model, osp.join(root, 'winogavil'))
    assert metrics['WinoGAViL'] == pytest.approx(wino)
    assert values['WinoGAViL'] == pytest.approx(wino['winogavil/jaccard_score_10-12'])


def test_missing_folders_are_named_with_their_download_command(tmp_path):
    spec = importlib.util.spec_from_file_location('datacomp_eval', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tasks = tool.selected_tasks(None)
    assert len(tasks) == 38
    with pytest.raises(SystemExit) as err:
        tool.check_folders(tasks, str(tmp_path))
    message = str(err.value)
    assert message.startswith(f'datacomp_eval: 38 dataset folder(s) missing under {tmp_path}')
    cars = osp.join(str(tmp_path), 'wds_cars_test')
    assert (f'  {cars} (Stanford Cars): huggingface-cli download djghosh/wds_cars_test '
            f'--repo-type dataset --local-dir {cars}') in message
    assert 'clip-benchmark/wds_mscoco_captions' in message
    assert 'download_evalsets.py' in message
    wino = osp.join(str(tmp_path), 'winogavil')
    assert (f'  {wino} (WinoGAViL): huggingface-cli download nlphuji/winogavil --repo-type '
            f'dataset --revision refs/convert/parquet --local-dir {wino}') in message
    # DataComp's own download of it (the datasets cache) counts once it holds the arrow table
    cache = tmp_path / 'hf_cache' / 'nlphuji___winogavil' / 'default' / '0.0.0' / 'a1'
    cache.mkdir(parents=True)
    (cache / 'winogavil-test.arrow').write_bytes(b'')
    with pytest.raises(SystemExit, match='37 dataset folder'):
        tool.check_folders(tasks, str(tmp_path))
    with pytest.raises(SystemExit, match="DataComp has no task 'cifar11'"):
        tool.selected_tasks(['cifar11'])
