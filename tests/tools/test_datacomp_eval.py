"""tools/analysis_tools/datacomp_eval.py on tiny test sets in clip_benchmark's webdataset layout
(five tasks: top-1, mean per-class recall, retrieval, worst region, top-5 worst income group)
with a random-weight tiny ViTamin CLIP: the printed average is the mean of the printed task
numbers, and CIFAR-10's top-1 equals a computation by hand from the model's features."""
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
from ..evaluation.test_datacomp import FIXTURE_TASKS, TINY_CLIP, write_datacomp_fixture

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


def test_datacomp_eval_runs_every_task_kind_and_averages(tmp_path):
    root = str(tmp_path / 'datacomp')
    counts = write_datacomp_fixture(root)
    model = _tiny_clip()
    ckpt = str(tmp_path / 'clip.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = str(tmp_path / 'results.json')
    stdout = run_tool([sys.executable, TOOL, TINY_CLIP, ckpt, '--data-root', root, '--num-workers', '0',
                       '--batch-size', '4', '--work-dir', str(tmp_path / 'work'), '--out', out,
                       '--tasks', *FIXTURE_TASKS, 'WinoGAViL'])
    results = json.load(open(out))
    values = {t['name']: t['value'] for t in results['tasks']}
    assert list(values) == ['CIFAR-10', 'Oxford-IIIT Pet', 'Flickr', 'FMoW', 'Dollar Street']
    # the printed table: one line per task, its value as printed, and the average of those
    printed = {name: float(re.search(rf'^{re.escape(name)}\s+\S+\s+\S+\s+([\d.]+)$', stdout,
                                     re.M).group(1)) for name in values}
    average = float(re.search(r'^Average over 5 of 38 tasks: ([\d.]+)$', stdout, re.M).group(1))
    assert average == pytest.approx(np.mean(list(printed.values())), abs=0.006)
    assert results['average'] == pytest.approx(np.mean(list(values.values())))
    assert results['num_tasks'] == 5 and results['of'] == 38
    assert 'WinoGAViL: not evaluated, WinoGAViL is a set of (cue word' in stdout
    assert results['left_out'][0]['name'] == 'WinoGAViL'
    # each task saw every sample of its test set, through its own metric
    metrics = {t['name']: t['metrics'] for t in results['tasks']}
    assert set(metrics['Flickr']) >= {'retrieval/t2i_recall@1', 'retrieval/i2t_recall@10'}
    assert set(metrics['FMoW']) >= {'worst_group/top1_group0', 'worst_group/top1_group2'}
    assert metrics['Dollar Street']['worst_group/top5'] <= metrics['Dollar Street'][
        'worst_group/top5_all']
    assert counts['wds_cifar10_test'] == 10
    # CIFAR-10's top-1 by hand from the same weights
    assert values['CIFAR-10'] == pytest.approx(
        _cifar10_top1_by_hand(model, osp.join(root, 'wds_cifar10_test')))


def test_missing_folders_are_named_with_their_download_command(tmp_path):
    spec = importlib.util.spec_from_file_location('datacomp_eval', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tasks = tool.selected_tasks(None)
    assert len(tasks) == 38
    with pytest.raises(SystemExit) as err:
        tool.check_folders(tasks, str(tmp_path))
    message = str(err.value)
    assert message.startswith(f'datacomp_eval: 37 dataset folder(s) missing under {tmp_path}')
    cars = osp.join(str(tmp_path), 'wds_cars_test')
    assert (f'  {cars} (Stanford Cars): huggingface-cli download djghosh/wds_cars_test '
            f'--repo-type dataset --local-dir {cars}') in message
    assert 'clip-benchmark/wds_mscoco_captions' in message
    assert 'download_evalsets.py' in message and 'WinoGAViL' not in message
    with pytest.raises(SystemExit, match="DataComp has no task 'cifar11'"):
        tool.selected_tasks(['cifar11'])
