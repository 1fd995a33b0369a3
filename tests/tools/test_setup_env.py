"""``tools/setup_env.sh``: which torch build it picks for a node's NVIDIA driver, the driver check,
how mmcv's ops are built (CUDA ops on a login node for ``TORCH_CUDA_ARCH_LIST``), and the cache
keys of the environment and of the mmcv wheel.

The script runs for real in its ``--print-plan`` mode (it creates and installs nothing) and, for the
refusals, in its build mode, which must stop before it creates anything. The node's tools are
stand-ins written here: an ``nvidia-smi`` that reports a given driver and compute capability (or
fails as on a machine without a driver) and an ``nvcc`` that reports a given CUDA release. Compiling
mmcv's CUDA ops cannot be done on a machine without nvcc; these tests check the choices and keys
that decide it."""
import glob
import hashlib
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import REPO

SCRIPT = osp.join(REPO, 'tools', 'setup_env.sh')
PYTAG = f'py{sys.version_info[0]}{sys.version_info[1]}'
# the variables the script reads; the test process's own values must not leak into a case
_SCRIPT_VARS = ('VLMM_TORCH_INDEX', 'VLMM_TORCH_VERSION', 'VLMM_DRIVER_VERSION', 'VLMM_VENV',
                'FORCE_CUDA', 'TORCH_CUDA_ARCH_LIST', 'CUDA_HOME', 'CUDA_PATH', 'MAX_JOBS')


def _req_hash():
    paths = sorted(glob.glob(osp.join(REPO, 'requirements', '*.txt')))
    data = b''.join(open(p, 'rb').read() for p in paths)
    return hashlib.sha256(data).hexdigest()[:10]


def _write_exe(path, body):
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + body)
    os.chmod(path, 0o755)


class Node:
    """A scratch cache and stand-ins for ``nvidia-smi`` and ``nvcc`` first on ``PATH``."""

    def __init__(self, root, driver=None, compute_cap='8.0', nvcc=None):
        self.cache = str(root / 'cache')
        self.bin = root / 'bin'
        self.bin.mkdir()
        if driver is None:  # as on a machine where the NVIDIA driver is absent
            _write_exe(self.bin / 'nvidia-smi',
                       'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the '
                       'NVIDIA driver." >&2\nexit 9\n')
        else:
            _write_exe(self.bin / 'nvidia-smi',
                       f'case "$*" in\n  *driver_version*) echo "{driver}";;\n'
                       f'  *compute_cap*) echo "{compute_cap}";;\n  *) exit 2;;\nesac\n')
        # CUDA_HOME is where the script (and torch) look for nvcc first: an empty one means none
        self.cuda_home = root / 'cuda'
        (self.cuda_home / 'bin').mkdir(parents=True)
        if nvcc is not None:
            _write_exe(self.cuda_home / 'bin' / 'nvcc',
                       'echo "nvcc: NVIDIA (R) Cuda compiler driver"\n'
                       f'echo "Cuda compilation tools, release {nvcc}, V{nvcc}.85"\n')

    def run(self, *args, **env):
        full = {k: v for k, v in os.environ.items() if k not in _SCRIPT_VARS}
        full.update(PATH=f'{self.bin}:{os.environ["PATH"]}', PYTHON=sys.executable,
                    VLMM_CACHE=self.cache, CUDA_HOME=str(self.cuda_home))
        full.update(env)
        return subprocess.run(['bash', SCRIPT, *args], env=full, capture_output=True, text=True,
                              timeout=60)

    def plan(self, **env):
        out = self.run('--print-plan', **env)
        assert out.returncode == 0, out.stderr
        assert not osp.exists(self.cache)  # the plan creates nothing
        return dict(line.split('=', 1) for line in out.stdout.splitlines())

    def refuse(self, **env):
        """Run a build that must stop at once: one message, nothing created."""
        out = self.run(**env)
        assert out.returncode == 1, out.stdout + out.stderr
        assert out.stdout == '' and not osp.exists(self.cache)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('setup_env: '), out.stderr
        return lines[0]


def test_without_a_gpu_the_default_build_and_its_cache_keys_are_unchanged(tmp_path):
    node = Node(tmp_path)
    plan = node.plan()
    assert plan['torch'] == 'torch==2.14.1 torchvision==0.29.1'
    assert plan['torch_index'] == 'pypi' and plan['torch_build'] == '2.14.1'
    assert plan['index_url'].startswith('the default index')
    assert plan['torch_cuda'] == '13.0'  # PyPI's torch 2.14.1 is the CUDA 13.0 build
    assert plan['driver'] == 'none (nvidia-smi found no driver or GPU)'
    assert plan['mmcv_ops'] == 'cpu'
    # the keys an existing cache was built under
    assert plan['venv'] == f'{node.cache}/venvs/{PYTAG}-{_req_hash()}'
    assert plan['mmcv_wheel_key'] == f'mmcv-2.1.0_torch-2.14.1_{PYTAG}_cpu'


@pytest.mark.parametrize('driver,variant', [
    ('470.82.01', None),  # CUDA 11 drivers run no torch 2.14 build
    ('525.60.13', 'cu128'),  # the CUDA 12.x minimum
    ('535.104.05', 'cu128'),  # a common A100 cluster driver
    ('575.57.08', 'cu128'),
    ('580.65.06', 'cu130'),  # the CUDA 13.x minimum
    ('590.44.01', 'cu130'),
])
def test_auto_picks_the_newest_variant_the_driver_runs(tmp_path, driver, variant):
    node = Node(tmp_path, driver=driver, nvcc='13.0' if variant == 'cu130' else '12.8')
    if variant is None:
        msg = node.refuse()
        assert msg == ('setup_env: the NVIDIA driver (nvidia-smi) is 470.82.01, older than every '
                       'CUDA variant of torch needs (CUDA 12.x: >= 525.60.13, CUDA 13.x: >= '
                       '580.65.06): update the driver, or choose VLMM_TORCH_INDEX=cpu')
        return
    plan = node.plan()
    cuda = '13.0' if variant == 'cu130' else '12.8'
    assert plan['torch_index'] == variant and plan['torch_cuda'] == cuda
    assert plan['index_url'] == f'https://download.pytorch.org/whl/{variant}'
    assert plan['torch_build'] == f'2.14.1+{variant}'
    assert plan['driver'] == f'{driver} (nvidia-smi)'
    assert plan['driver_min'] == ('580.65.06' if variant == 'cu130' else '525.60.13')
    # a GPU and nvcc here: CUDA ops for this node's GPUs (compute capability 8.0, an A100)
    assert plan['mmcv_ops'] == (f'cuda (nvcc {cuda} at {node.cuda_home}/bin/nvcc, '
                                'TORCH_CUDA_ARCH_LIST=8.0)')
    assert plan['venv'] == f'{node.cache}/venvs/{PYTAG}-{_req_hash()}-{variant}'
    assert plan['mmcv_wheel_key'] == (f'mmcv-2.1.0_torch-2.14.1+{variant}_{PYTAG}_'
                                      f'cu{cuda.replace(".", "")}_sm80')


def test_a_variant_the_driver_cannot_run_stops_before_anything_is_made(tmp_path):
    node = Node(tmp_path, driver='535.104.05', nvcc='12.8')
    msg = node.refuse(VLMM_TORCH_INDEX='cu130')
    assert msg == ('setup_env: torch 2.14.1 cu130 is built for CUDA 13.0 and needs an NVIDIA '
                   'driver >= 580.65.06, but the driver (nvidia-smi) is 535.104.05: choose '
                   'VLMM_TORCH_INDEX=cu128 (the newest variant this driver runs) or update the '
                   'driver.')
    # the default index's wheel is a CUDA 13.0 build too
    assert ('torch 2.14.1 of the default index is built for CUDA 13.0 and needs an NVIDIA driver '
            '>= 580.65.06') in node.refuse(VLMM_TORCH_INDEX='pypi')
    # an explicit variant the driver runs is taken as asked
    assert node.plan(VLMM_TORCH_INDEX='cu126')['torch_index'] == 'cu126'
    # --check stops the same way
    assert 'VLMM_TORCH_INDEX=cu128' in node.run('--check', VLMM_TORCH_INDEX='cu130').stderr


def test_login_node_builds_the_cuda_ops_for_the_arch_list(tmp_path):
    """No GPU on the node, the compute nodes' driver given, FORCE_CUDA=1 with nvcc 12.6: CUDA ops
    for the listed architectures; the wheel's key holds them (in any order)."""
    node = Node(tmp_path, nvcc='12.6')
    login = dict(VLMM_DRIVER_VERSION='535.104.05', FORCE_CUDA='1')
    plan = node.plan(TORCH_CUDA_ARCH_LIST='8.0;9.0', VLMM_TORCH_INDEX='cu126', **login)
    assert plan['driver'] == '535.104.05 (VLMM_DRIVER_VERSION)'
    assert plan['mmcv_ops'] == (f'cuda (nvcc 12.6 at {node.cuda_home}/bin/nvcc, '
                                'TORCH_CUDA_ARCH_LIST=8.0;9.0)')
    key = f'mmcv-2.1.0_torch-2.14.1+cu126_{PYTAG}_cu126_sm80-sm90'
    assert plan['mmcv_wheel_key'] == key
    assert node.plan(TORCH_CUDA_ARCH_LIST='9.0 8.0', VLMM_TORCH_INDEX='cu126',
                     **login)['mmcv_wheel_key'] == key
    a100 = node.plan(TORCH_CUDA_ARCH_LIST='8.0', VLMM_TORCH_INDEX='cu126', **login)
    assert a100['mmcv_wheel_key'] == f'mmcv-2.1.0_torch-2.14.1+cu126_{PYTAG}_cu126_sm80'
    # auto with the compute nodes' driver picks their variant
    assert node.plan(TORCH_CUDA_ARCH_LIST='8.0', **login)['torch_index'] == 'cu128'
    # the same without FORCE_CUDA: CPU ops, keyed as such
    plain = node.plan(VLMM_TORCH_INDEX='cu126', VLMM_DRIVER_VERSION='535.104.05')
    assert plain['mmcv_ops'] == 'cpu'
    assert plain['mmcv_wheel_key'] == f'mmcv-2.1.0_torch-2.14.1+cu126_{PYTAG}_cpu'

    msg = node.refuse(VLMM_TORCH_INDEX='cu126', **login)
    assert msg == ('setup_env: FORCE_CUDA=1 on a node without a GPU: set TORCH_CUDA_ARCH_LIST to '
                   'the compute capabilities of the GPUs that will run mmcv\'s ops: "8.0" for '
                   'A100, "9.0" for H100, "8.0;9.0" for both')
    msg = node.refuse(VLMM_TORCH_INDEX='cu130', TORCH_CUDA_ARCH_LIST='9.0', FORCE_CUDA='1')
    assert msg == (f'setup_env: nvcc {node.cuda_home}/bin/nvcc is CUDA 12.6, and torch cu130 is '
                   'built for CUDA 13.0: mmcv\'s CUDA ops need both of the same major version. '
                   'Put a CUDA 13.x nvcc first (CUDA_HOME), or choose VLMM_TORCH_INDEX=cu128 '
                   '(CUDA 12).')
    msg = node.refuse(VLMM_TORCH_INDEX='cpu', TORCH_CUDA_ARCH_LIST='8.0', FORCE_CUDA='1')
    assert 'FORCE_CUDA=1 asks for mmcv\'s CUDA ops, but torch cpu has no CUDA' in msg


def test_no_nvcc_on_a_gpu_node_is_named(tmp_path):
    node = Node(tmp_path, driver='550.54.15')  # a GPU and no nvcc anywhere the script looks
    msg = node.refuse()
    assert msg.startswith("setup_env: mmcv's CUDA ops need nvcc of CUDA 12.x (torch cu128 is "
                          'built for CUDA 12.8), and none is in CUDA_HOME/bin')
    assert msg.endswith('FORCE_CUDA=0 builds the CPU ops only')
    assert node.plan(FORCE_CUDA='0')['mmcv_ops'] == 'cpu'


def test_variant_and_torch_version_choices_and_their_keys(tmp_path):
    node = Node(tmp_path)
    cpu = node.plan(VLMM_TORCH_INDEX='cpu')
    assert cpu['index_url'] == 'https://download.pytorch.org/whl/cpu'
    assert cpu['torch_build'] == '2.14.1+cpu' and cpu['torch_cuda'] == 'none'
    assert cpu['venv'].endswith(f'{PYTAG}-{_req_hash()}-cpu')
    assert cpu['mmcv_wheel_key'] == f'mmcv-2.1.0_torch-2.14.1+cpu_{PYTAG}_cpu'
    # a mirror of the PyTorch index: its last path component names the variant
    mirror = node.plan(VLMM_TORCH_INDEX='https://mirror.example.org/pytorch/whl/cu126/')
    assert mirror['index_url'] == 'https://mirror.example.org/pytorch/whl/cu126'
    assert mirror['torch_index'] == 'cu126' and mirror['venv'].endswith('-cu126')
    # another supported torch: its own environment and mmcv wheel
    t211 = node.plan(VLMM_TORCH_VERSION='2.11.0', VLMM_TORCH_INDEX='cu128')
    assert t211['torch'] == 'torch==2.11.0 torchvision==0.26.*'
    assert t211['venv'].endswith(f'{PYTAG}-{_req_hash()}-torch2.11.0-cu128')
    assert t211['mmcv_wheel_key'] == f'mmcv-2.1.0_torch-2.11.0+cu128_{PYTAG}_cpu'
    venvs = {node.plan(VLMM_TORCH_INDEX=v)['venv']
             for v in ('pypi', 'cpu', 'cu126', 'cu128', 'cu130')}
    assert len(venvs) == 5

    assert node.refuse(VLMM_TORCH_INDEX='cuda12') == (
        'setup_env: VLMM_TORCH_INDEX=cuda12: expected auto, pypi, cpu, a CUDA variant of the '
        'PyTorch index (cu126, cu128, cu130) or the URL of such an index (ending in /cpu or '
        '/cuXYZ)')
    assert node.refuse(VLMM_TORCH_VERSION='2.10.0') == (
        'setup_env: VLMM_TORCH_VERSION=2.10.0: visionllama_mm supports torch 2.11.x to 2.14.x; '
        'give a full version such as 2.11.0')
    assert node.refuse(VLMM_DRIVER_VERSION='latest') == (
        "setup_env: VLMM_DRIVER_VERSION gives the NVIDIA driver version 'latest'; expected a "
        'version such as 535.104.05')
    out = node.run('--plan')
    assert out.returncode == 1 and "unknown argument '--plan'" in out.stderr
