"""Shared fixtures: repository paths, the interpreter, and tiny real datasets."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(args, cwd=REPO, timeout=600, env=None):
    """Run a command (list) from the repo root; fail the test with its output on error."""
    full_env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    if env:
        full_env.update(env)
    proc = subprocess.run(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
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
