"""tools/gpu_check/run.sh (the one GPU acceptance command) as its CPU dry run, the benchmark
table's verdicts, and the wheel bundle's requirement list (no download)."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from ..conftest import REPO

RUN = osp.join(REPO, 'tools', 'gpu_check', 'run.sh')


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f'_gpu_check_{name}', osp.join(REPO, 'tools', 'gpu_check', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_sh_cpu_tiny_end_to_end(tmp_path):
    """The whole command on the CPU: training checks, the benchmark table and summary.md."""
    out = tmp_path / 'out'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               VLMM_GPU_CHECK_DIR=str(tmp_path / 'work'))
    env.pop('PYTHONPATH', None)
    proc = subprocess.run(['bash', RUN, str(out), '--device', 'cpu', '--tiny', '--skip-install',
                           '--only', 'convnextv2'], cwd=tmp_path, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    summary = (out / 'summary.md').read_text()
    assert proc.returncode == 0, proc.stdout + summary
    # one row per step with its result and time; logs kept
    assert re.search(r'^\| install \| skipped \(--skip-install\)', summary, re.M), summary
    assert re.search(r'^\| train_checks \| passed \| \d+ \| logs/train_checks.log \|$', summary,
                     re.M), summary
    assert re.search(r'^\| bench \| passed; [01] targets met, [01] missed, 5 not measured \| '
                     r'\d+ \| logs/bench.log \|$', summary, re.M), summary
    assert 'mmcv ops' not in summary  # no CUDA build on the CPU
    assert re.search(r'^- device: CPU', summary, re.M) and '- torch 2.' in summary, summary
    assert (out / 'logs' / 'bench.log').is_file() and (out / 'logs' / 'train_checks.log').is_file()
    assert (out / 'train_checks.json').is_file()

    bench = (out / 'bench.md').read_text()
    assert '## bench.md' in summary and bench.strip() in summary
    rows = {m.group(1): m.group(2).split(' | ')
            for m in re.finditer(r'^\| (?!pair )(\w+) \| (.*) \|$', bench, re.M)}
    assert set(rows) == {'visionllama', 'pyramid', 'convnextv2', 'vitamin', 'dit', 'llama',
                         'fcmae'}, bench
    for name, cells in rows.items():
        # ours / ref, depth, batch x input, 4 rates, ratio, memory, target, result
        assert len(cells) == 11, (name, cells)
        assert float(cells[3].replace(',', '')) > 0 and float(cells[4].replace(',', '')) > 0
        assert re.fullmatch(r'[\d.]+x eager.*', cells[7]), (name, cells)
    # the first pair is compiled (eager backend) in tiny mode, the others eager only
    assert float(rows['visionllama'][5].replace(',', '')) > 0, rows['visionllama']
    assert re.fullmatch(r'[\d.]+x eager, \*\*[\d.]+x compiled\*\*', rows['visionllama'][7])
    assert rows['visionllama'][9] == '>= 1.0x compiled'
    assert rows['visionllama'][10] in ('met', 'MISSED')
    assert rows['dit'][9] == '>= 1.2x compiled'
    assert rows['fcmae'][9] == '>= 1.5x compiled and >= 1.5x lighter'
    assert rows['pyramid'][10] == 'not measured (no compiled run)'
    assert rows['llama'][9] == 'none set'
    assert rows['dit'][2] == '2 x 8^2 latents' and rows['llama'][2] == '2 x 16 tokens'
    assert re.search(r'^result: [01] targets met, [01] missed, 5 not measured$', bench, re.M), bench
    data = json.loads((out / 'bench.json').read_text())
    assert data['tiny'] and data['env']['device'] == 'cpu'
    assert [r['name'] for r in data['results']['fcmae']['rows']] == ['SparseConvNeXtV2',
                                                                     'masked-dense']


def test_bench_verdicts():
    """Targets: compiled ratio against the pair's target; FCMAE also 1.5x lighter."""
    bench = _load('bench_table')
    pairs = {p['name']: p for p in bench.PAIRS}

    def result(ours, ref, peak_ours=1., peak_ref=1., compiled=True):
        rows = [dict(name='a', rate=ours, peak=peak_ours), dict(name='b', rate=ref, peak=peak_ref)]
        if compiled:
            rows += [dict(name='a compiled', rate=ours * 2, peak=peak_ours),
                     dict(name='b compiled', rate=ref * 2, peak=peak_ref)]
        return dict(rows=rows)

    assert bench.verdict(pairs['dit'], result(125, 100))[3] == 'met'
    assert bench.verdict(pairs['dit'], result(115, 100)) == (
        '1.15x eager, **1.15x compiled**', '1 / 1', '>= 1.2x compiled', 'MISSED')
    assert bench.verdict(pairs['fcmae'], result(200, 100, 100, 140))[3] == 'MISSED'  # not lighter
    assert bench.verdict(pairs['fcmae'], result(200, 100, 100, 160))[3] == 'met'
    assert bench.verdict(pairs['vitamin'], result(99, 100, compiled=False))[3] == \
        'not measured (no compiled run)'
    assert bench.verdict(pairs['vitamin'], {})[3] == 'not measured'


def test_run_sh_refuses_bad_arguments(tmp_path):
    for args, message in ((['--device', 'tpu'], "--device must be cuda or cpu, got 'tpu'"),
                          (['--budget', '10'], '--budget must be a whole number of seconds >= 60'),
                          (['--mmcv-ops', 'maybe'], "--mmcv-ops must be build or skip"),
                          (['--fast'], "unknown argument '--fast'")):
        proc = subprocess.run(['bash', RUN, str(tmp_path / 'o'), *args], text=True,
                              capture_output=True)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
    # no CUDA device here: one line before any step runs, nothing written
    proc = subprocess.run(['bash', RUN, str(tmp_path / 'o'), '--device', 'cuda'], text=True,
                          capture_output=True, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 2, proc.stderr
    assert re.fullmatch(r'run.sh: --device cuda, but torch \S+ \(built for CUDA [\d.]+\) sees no '
                        r'CUDA device(: .*)?\. Use --device cpu --tiny for the dry run\.\n',
                        proc.stderr), proc.stderr
    assert not (tmp_path / 'o').exists()


def test_wheel_bundle_requirements_follow_the_pins():
    """The bundle's requirement list (resolved against the GPU machine model only when run) takes
    every pin from requirements/*.txt; torch is never in it; the bundle folder is ignored by git."""
    prep = _load('prepare_wheels')
    reqs = prep.top_level()
    pins = {}
    for name in os.listdir(osp.join(REPO, 'requirements')):
        for line in open(osp.join(REPO, 'requirements', name)):
            line = line.split('#', 1)[0].strip()
            if line:
                pins.setdefault(re.split(r'[=<>!~ ]', line, 1)[0].lower().replace('_', '-'),
                                line.replace(' ', ''))
    for req in reqs:
        key = re.split(r'[=<>!~]', req, 1)[0].lower().replace('_', '-')
        assert pins[key] == req, (req, pins[key])
    assert {'mmengine==0.10.7', 'mmpretrain==1.2.0', 'mmsegmentation==1.2.2', 'mmdet==3.3.0',
            'transformers==4.46.3', 'tokenizers>=0.20,<0.21', 'huggingface_hub<1.0',
            'open_clip_torch==3.3.0', 'diffusers==0.35.2', 'torch-fidelity==0.4.0'} <= set(reqs)
    assert not any(re.match(r'(torch|torchvision|triton)([=<>!~]|$)|nvidia-', r) for r in reqs)
    assert prep.read_pin('runtime.txt', 'mmcv') == 'mmcv==2.1.0'
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'gpu_check',
                                                    'prepare_wheels.py'), '--print-requirements'],
                          text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        'machine: torch==2.11.* timm transformers>=5 torchdiffeq torchmetrics safetensors onnx',
        'ours: ' + ' '.join(reqs + ['mmcv==2.1.0'])]
    ignored = subprocess.run(['git', 'check-ignore', '-q', 'tools/gpu_check/wheels/x.whl'],
                             cwd=REPO)
    assert ignored.returncode == 0
    with pytest.raises(SystemExit, match='nonexistent is not in .*requirements/runtime.txt'):
        prep.read_pin('runtime.txt', 'nonexistent')


def test_bundle_packing_keeps_every_wheel_member(tmp_path):
    """bundle.tar.xz holds each wheel re-zipped without compression (same members, same bytes)
    and the other files as they are."""
    import tarfile
    import zipfile
    prep = _load('prepare_wheels')
    src = tmp_path / 'src'
    src.mkdir()
    wheel = src / 'demo-1.0-py3-none-any.whl'
    members = {'demo/__init__.py': b'x = 1\n' * 500,
               'demo-1.0.dist-info/RECORD': b'demo/__init__.py,,\n'}
    with zipfile.ZipFile(wheel, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    sdist = src / 'demo-1.0.tar.gz'
    sdist.write_bytes(b'not really a tarball')
    dest, tmp = tmp_path / 'dest', tmp_path / 'tmp'
    dest.mkdir()
    tmp.mkdir()
    archive = prep.pack([str(wheel), str(sdist)], str(dest), str(tmp))
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ['demo-1.0-py3-none-any.whl', 'demo-1.0.tar.gz']
        tar.extractall(tmp_path / 'out')
    with zipfile.ZipFile(tmp_path / 'out' / wheel.name) as z:
        assert [i.compress_type for i in z.infolist()] == [zipfile.ZIP_STORED] * 2
        assert {n: z.read(n) for n in z.namelist()} == members
    assert (tmp_path / 'out' / sdist.name).read_bytes() == b'not really a tarball'
