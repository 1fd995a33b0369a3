"""Shared fixtures: repository paths, the interpreter, and tiny real datasets."""
import atexit
import json
import os
import os.path as osp
import select
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


class _Zygote:
    """``tests/zygote.py`` for this test process: started on first use, forks one child per tool
    run (no import cost per run; each run is still a fresh process)."""

    def __init__(self):
        self.proc = None

    def start(self):
        env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
        self.proc = subprocess.Popen([sys.executable, osp.join(REPO, 'tests', 'zygote.py')],
                                     cwd=REPO, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        atexit.register(self.proc.kill)

    def run(self, argv, cwd, env, timeout, merge):
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        with tempfile.TemporaryDirectory() as tmp:
            out, err = osp.join(tmp, 'out'), None if merge else osp.join(tmp, 'err')
            self.proc.stdin.write(json.dumps(dict(argv=list(map(str, argv)), cwd=str(cwd),
                                                  env=env, stdout=out, stderr=err)) + '\n')
            self.proc.stdin.flush()
            pid = json.loads(self.proc.stdout.readline())['pid']
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                os.killpg(pid, signal.SIGKILL)
            rc = json.loads(self.proc.stdout.readline())['rc']
            stdout = open(out, errors='replace').read()
            stderr = None if merge else open(err, errors='replace').read()
        if not ready:
            raise subprocess.TimeoutExpired(argv, timeout, output=stdout, stderr=stderr)
        return subprocess.CompletedProcess(argv, rc, stdout, stderr)


_ZYGOTE = _Zygote()


def pytest_configure(config):
    """List every skipped test with its reason in the summary (as ``-rs`` does): the only skips
    in this suite depend on the machine (a CPU without bf16 instructions), and say so.

    Keep the file order of :func:`pytest_collection_modifyitems` under ``--dist loadfile``:
    xdist's default (``--loadscope-reorder``) hands out the files with the most tests first, which
    left the long learning tests (one or two tests per file) to the end, run by one worker while
    the other had nothing left to do."""
    chars = config.option.reportchars or ''
    if 's' not in chars and 'a' not in chars and 'A' not in chars:
        config.option.reportchars = chars + 's'
    if hasattr(config.option, 'loadscopereorder'):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Longest test files first, by their times in ``tests/durations.json`` (from a full run;
    ``tests/durations.py`` rewrites it): xdist's workers then take the short files last, and
    both finish at about the same time. Tests keep their order within a file; files without a
    time keep theirs, after the timed ones."""
    with open(osp.join(REPO, 'tests', 'durations.json')) as f:
        seconds = json.load(f)
    # a stable sort: a file's tests stay together and in order, as do files of equal time
    items.sort(key=lambda item: -seconds.get(item.nodeid.split('::', 1)[0], 0.0))


@pytest.fixture(autouse=True)
def _restore_default_scope():
    """Give every test the default scope it started with. ``init_default_scope`` and every
    ``Runner`` (``default_scope='mmengine'`` unless told) register a process-wide
    ``DefaultScope`` that would otherwise decide which registry the next test's builds search."""
    from mmengine.registry import DefaultScope
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def run_python(args, cwd=REPO, timeout=600, env=None, merge=True, fresh=False):
    """Run a command (list) with ``PYTHONPATH`` at the repo and one OpenMP thread; returns a
    ``CompletedProcess`` with text output (stderr in stdout when ``merge``).

    ``python some/file.py ...`` runs in a child forked from the pre-imported ``tests/zygote.py``
    unless ``fresh``: the same ``__main__``, argv, cwd and environment as from a shell, without
    the imports each time -- but torch, the OpenMMLab packages and this package are already
    imported, registered and shimmed, so a tool that forgets an import (or a config without
    ``custom_imports``) still works there. ``fresh=True`` starts a new interpreter, as a user's
    shell does: use it where the claim is about what a new process imports and registers.
    ``TESTS_FRESH_PROCESSES=1`` in the environment runs every tool that way (slower: each run
    imports everything again). Anything else (``bash tools/dist_train.sh``, ``python -c``) is an
    ordinary subprocess."""
    fresh = fresh or os.environ.get('TESTS_FRESH_PROCESSES') == '1'
    full_env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    if env:
        full_env.update(env)
    args = list(args)
    if (not fresh and len(args) > 1 and str(args[0]) == sys.executable
            and str(args[1]).endswith('.py') and not str(args[1]).startswith('-')):
        script = osp.join(cwd, str(args[1]))
        return _ZYGOTE.run([script, *args[2:]], cwd, full_env, timeout, merge)
    return subprocess.run(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT if merge else subprocess.PIPE, text=True,
                          timeout=timeout)


def free_port() -> int:
    """A TCP port nobody listens on now, picked by the OS, for a distributed run's rendezvous
    (``PORT`` of tools/dist_*.sh, ``MASTER_PORT``): parallel test workers never share one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(args, cwd=REPO, timeout=600, env=None, fresh=False):
    """Run a command (list) from the repo root; fail the test with its output on error.
    ``fresh``: in a new interpreter, not forked from the pre-imported one (see ``run_python``)."""
    proc = run_python(args, cwd=cwd, timeout=timeout, env=env, fresh=fresh)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-6000:]}')
    return proc.stdout


@pytest.fixture(scope='session')
def repo():
    return REPO


@pytest.fixture(scope='session')
def python():
    return sys.executable


@pytest.fixture(scope='session')
def digits_root(tmp_path_factory):
    """The quickstart's digits written once per session in ImageNet format."""
    from visionllama_mm.datasets import prepare_digits
    return prepare_digits(str(tmp_path_factory.mktemp('data') / 'digits'))


def shared_dir(tmp_path_factory, name: str, make) -> str:
    """A folder that ``make(folder)`` fills once per test session, shared by the xdist workers:
    the first worker to ask fills it under a file lock, the others wait and reuse it."""
    from filelock import FileLock
    base = tmp_path_factory.getbasetemp()
    if os.environ.get('PYTEST_XDIST_WORKER'):
        base = base.parent  # this session's folder, common to its workers
    folder = base / name
    with FileLock(f'{folder}.lock'):
        if not (folder / '.done').exists():
            folder.mkdir(parents=True, exist_ok=True)
            make(str(folder))
            (folder / '.done').touch()
    return str(folder)


@pytest.fixture(scope='session')
def digit_captions(tmp_path_factory, digits_root, python):
    """The digit-caption shards of the tiny CLIP configs, written once per session by
    tools/dataset_converters/digit_captions.py in a new interpreter, as from a shell."""
    return shared_dir(tmp_path_factory, 'digit_captions', lambda out: run_tool(
        [python, 'tools/dataset_converters/digit_captions.py', digits_root, out], fresh=True))


@pytest.fixture(scope='session')
def clip_digits_run(tmp_path_factory, digits_root, digit_captions, python):
    """(work dir holding ``iter_300.pth``, training log): the tiny ViTamin CLIP of
    configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py trained by tools/train.py on the
    digit captions, once per session (tests/tools/test_clip_learning.py checks that it learns;
    the inferencer tests use its checkpoint)."""
    def train(work):
        opts = [f'train_dataloader.dataset.data_root={digit_captions}',
                f'val_dataloader.dataset.data_root={digits_root}',
                f'test_dataloader.dataset.data_root={digits_root}']
        out = run_tool([python, 'tools/train.py',
                        'configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py',
                        '--work-dir', work, '--cfg-options', *opts])
        with open(osp.join(work, 'train.log'), 'w') as f:
            f.write(out)

    work = shared_dir(tmp_path_factory, 'clip_digits', train)
    with open(osp.join(work, 'train.log')) as f:
        return work, f.read()


@pytest.fixture(scope='session')
def ade20k_root(tmp_path_factory):
    """ADE20K-format shapes dataset (see tests/data_fixtures.py)."""
    from .data_fixtures import write_ade20k
    return write_ade20k(str(tmp_path_factory.mktemp('ade') / 'ADEChallengeData2016'))


@pytest.fixture(scope='session')
def coco_root(tmp_path_factory):
    """COCO-format shapes dataset with polygon and RLE masks (see tests/data_fixtures.py)."""
    from .data_fixtures import write_coco
    return write_coco(str(tmp_path_factory.mktemp('coco') / 'coco'))
