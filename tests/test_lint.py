"""The whole tree is clean under the linters configured in ``setup.cfg`` (flake8 and isort).

Both run as modules of the test interpreter, from the repository root, so they read the same
settings a developer's ``flake8`` / ``isort --check-only`` reads there.
"""
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _run(*args):
    return subprocess.run([sys.executable, '-m', *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_flake8_clean():
    proc = _run('flake8', '.')
    assert proc.returncode == 0, f'flake8 found problems:\n{proc.stdout}{proc.stderr}'


def test_isort_clean():
    proc = _run('isort', '--check-only', '--diff', '.')
    assert proc.returncode == 0, f'isort would reorder imports:\n{proc.stdout}{proc.stderr}'
