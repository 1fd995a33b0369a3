"""Multi-node launches: two torchrun nodes equal one process with the global batch, and the srun
command that tools/slurm_train.sh / slurm_test.sh build (checked without Slurm, by a recording
``srun`` first on PATH)."""
import os
import os.path as osp
import signal
import subprocess
import sys

import pytest

from ..conftest import REPO, free_port, run_tool

QUICKSTART = 'configs/quickstart/visionllama-tiny-p4_1xb64-20e_digits.py'


def _tiny_digits(digits_root, batch_size):
    """The quickstart shrunk to seconds: a 2-block, 32-wide VisionLLaMA, 256 training images, two
    epochs, a checkpoint after each, no validation and no drop path. RandomCrop stays on: the
    training sampler keys each sample's crop by its place in the global order, so one process and
    two nodes crop every image the same way."""
    return [
        '--no-validate', '--cfg-options',
        'model.backbone.arch.embed_dims=32', 'model.backbone.arch.num_layers=2',
        'model.backbone.arch.num_heads=2', 'model.backbone.arch.feedforward_channels=64',
        'model.head.in_channels=32', 'model.backbone.drop_path_rate=0.0',
        f'train_dataloader.dataset.data_root={digits_root}', 'train_dataloader.dataset.indices=256',
        f'train_dataloader.batch_size={batch_size}', 'train_dataloader.sampler.seed=0',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_cfg.max_epochs=2', 'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.checkpoint.save_best=None',
        'default_hooks.logger.interval=1',
    ]


def _weights(work_dir, epoch):
    """The model weights of a checkpoint, read with torch.load(weights_only=True) (mmengine's
    message-hub classes allowed)."""
    from visionllama_mm.compat import load_checkpoint_file
    return load_checkpoint_file(osp.join(work_dir, f'epoch_{epoch}.pth'), 'cpu')['state_dict']


def _max_diff(a, b):
    assert a.keys() == b.keys()
    assert all(a[k].shape == b[k].shape for k in a)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _launch_node(node_rank, port, work_dir, log, digits_root):
    """``NNODES=2 NODE_RANK=node_rank MASTER_ADDR=127.0.0.1 PORT=port dist_train.sh CONFIG 1``."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', PYTHON=sys.executable,
               NNODES='2', NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1', PORT=str(port))
    return subprocess.Popen(
        ['bash', 'tools/dist_train.sh', QUICKSTART, '1', '--work-dir', work_dir,
         *_tiny_digits(digits_root, 32)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_two_nodes_of_32_equal_one_process_of_64(tmp_path, python, digits_root):
    """Two torchrun nodes of one process each (batch 32) train the same weights as one process
    with the global batch (64), at every parameter after two epochs (8 iterations).

    Why they can agree: mmengine's DefaultSampler with a fixed seed gives rank r the indices
    r::2 of one permutation per epoch, so an iteration's 64 samples are the same in both runs;
    DDP's all-reduce averages the two 32-sample mean gradients, which is the 64-sample mean summed
    in another order. The tolerance is fp32 rounding of that order carried through 8 AdamW steps
    (updates of lr * m / sqrt(v), lr 2e-3 at most): 1e-5. Measured on CPU: 1.2e-7, while the
    second epoch alone moves the weights by up to 7e-3 and one process with batch 32 (16
    iterations) ends 2.8e-2 away. The reference is tools/train.py without a launcher (no DDP).
    Each node has its own work dir: only node 0 (global rank 0) writes checkpoints."""
    nodes = [str(tmp_path / f'node{r}') for r in (0, 1)]
    port = free_port()
    logs = [open(tmp_path / f'node{r}.log', 'w') for r in (0, 1)]
    procs = [_launch_node(r, port, nodes[r], logs[r], digits_root) for r in (0, 1)]
    one, neg = str(tmp_path / 'one'), str(tmp_path / 'one_b32')
    try:  # the single-process runs go while the two nodes start
        run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', one,
                  *_tiny_digits(digits_root, 64)])
        run_tool([python, 'tools/train.py', QUICKSTART, '--work-dir', neg,
                  *_tiny_digits(digits_root, 32)])
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in logs:
            f.close()
    out = [open(tmp_path / f'node{r}.log').read() for r in (0, 1)]
    assert codes == [0, 0], f'node 0:\n{out[0][-4000:]}\nnode 1:\n{out[1][-4000:]}'
    assert 'Epoch(train) [2][4/4]' in out[0], out[0][-3000:]  # 256 / (2 x 32) = 4 per epoch
    assert 'GPU number: 2' in out[0], out[0][-3000:]  # mmengine's world size
    # global rank 0 (node 0) writes the checkpoints; node 1 writes none
    assert not any(f.endswith('.pth') for f in os.listdir(nodes[1]))

    two_nodes, one_proc = _weights(nodes[0], 2), _weights(one, 2)
    diff = _max_diff(two_nodes, one_proc)
    moved = _max_diff(_weights(one, 1), one_proc)  # what the second epoch changed
    other_batch = _max_diff(_weights(neg, 2), one_proc)
    print(f'2 nodes x 32 vs 1 process x 64: max |diff| {diff:.3g} over {len(one_proc)} tensors; '
          f'epoch 2 moved the weights by up to {moved:.3g}; 1 process x 32: {other_batch:.3g}')
    assert diff <= 1e-5 and diff < moved / 100
    assert moved > 1e-3 and other_batch > 1e-3


# -- the srun command, without Slurm -------------------------------------------------------------

SRUN = ('#!/bin/sh\n'  # argv NUL-separated, and the PYTHONPATH the tasks would inherit
        'printf "%s\\0" "$@" > "$SRUN_RECORD"\n'
        'printf "%s" "$PYTHONPATH" > "$SRUN_RECORD.env"\n')


@pytest.fixture()
def fake_srun(tmp_path):
    """Run a slurm_*.sh with a recording ``srun`` first on PATH; returns (exit code, output,
    srun's argv or None, the PYTHONPATH srun saw)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'srun').write_text(SRUN)
    (bin_dir / 'srun').chmod(0o755)
    record = tmp_path / 'srun.argv'

    def run(argv, **env):
        if record.exists():
            record.unlink()
        full_env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'SRUN_RECORD': str(record),
                    'PYTHON': '/opt/env/bin/python', **env}
        proc = subprocess.run(['bash', *argv], cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=60)
        if not record.exists():
            return proc.returncode, proc.stdout, None, None
        args = record.read_bytes().split(b'\0')[:-1]
        return (proc.returncode, proc.stdout, [a.decode() for a in args],
                open(f'{record}.env').read())
    return run


def test_slurm_train_two_nodes_command(fake_srun, tmp_path):
    """GPUS=16 on nodes of 8: 2 nodes, 8 tasks and 8 GPUs each; SRUN_ARGS split into options;
    train.py's flags reach it intact (a value with a space stays one argument)."""
    work = str(tmp_path / 'work dir')
    rc, out, argv, pythonpath = fake_srun(
        ['tools/slurm_train.sh', 'gpu-a100', 'vl base', QUICKSTART, work, '--amp',
         '--cfg-options', 'randomness.seed=3', 'work_dir_note=two words'],
        GPUS='16', GPUS_PER_NODE='8', CPUS_PER_TASK='6',
        SRUN_ARGS='--quotatype=auto  --exclude=node[1-2]')
    assert rc == 0, out
    assert argv == [
        '-p', 'gpu-a100', '--job-name=vl base', '--nodes=2', '--gres=gpu:8', '--ntasks=16',
        '--ntasks-per-node=8', '--cpus-per-task=6', '--kill-on-bad-exit=1',
        '--quotatype=auto', '--exclude=node[1-2]',
        '/opt/env/bin/python', '-u', 'tools/train.py', QUICKSTART, f'--work-dir={work}',
        '--launcher=slurm', '--amp', '--cfg-options', 'randomness.seed=3',
        'work_dir_note=two words'], out
    assert pythonpath.split(':')[0] == REPO  # every task imports this checkout


def test_slurm_test_defaults_and_one_node(fake_srun, tmp_path):
    """Defaults: 8 GPUs on one node, 5 CPUs per task; fewer GPUS than GPUS_PER_NODE asks one node
    for just those GPUs."""
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    rc, out, argv, _ = fake_srun(['tools/slurm_test.sh', 'gpu', 'eval', QUICKSTART, str(ckpt),
                                  '--out', str(tmp_path / 'my preds.pkl')])
    assert rc == 0, out
    assert argv == [
        '-p', 'gpu', '--job-name=eval', '--nodes=1', '--gres=gpu:8', '--ntasks=8',
        '--ntasks-per-node=8', '--cpus-per-task=5', '--kill-on-bad-exit=1',
        '/opt/env/bin/python', '-u', 'tools/test.py', QUICKSTART, str(ckpt), '--launcher=slurm',
        '--out', str(tmp_path / 'my preds.pkl')], out
    rc, out, argv, _ = fake_srun(['tools/slurm_train.sh', 'gpu', 'small', QUICKSTART, 'w'],
                                 GPUS='4')
    assert rc == 0, out
    assert argv[:6] == ['-p', 'gpu', '--job-name=small', '--nodes=1', '--gres=gpu:4',
                        '--ntasks=4'] and argv[6] == '--ntasks-per-node=4', argv


def test_launchers_refuse_an_uneven_or_unaddressed_layout(fake_srun, tmp_path):
    """GPUS that do not fill whole nodes, and a second node without node 0's address, fail before
    srun / torchrun start, naming the variable."""
    rc, out, argv, _ = fake_srun(['tools/slurm_train.sh', 'gpu', 'j', QUICKSTART, 'w'],
                                 GPUS='12', GPUS_PER_NODE='8')
    assert rc == 2 and argv is None
    assert ('slurm_train.sh: error: GPUS: 12 is not a multiple of GPUS_PER_NODE (8); each node '
            'runs GPUS_PER_NODE tasks, so the job would hold 16 GPUs and leave 4 idle') in out, out
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'')
    for tool, args in (('dist_train.sh', [QUICKSTART, '8']),
                       ('dist_test.sh', [QUICKSTART, str(ckpt), '8'])):
        proc = subprocess.run(['bash', f'tools/{tool}', *args], cwd=REPO,
                              env={'PATH': '/usr/bin:/bin', 'NNODES': '2', 'NODE_RANK': '1'},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=60)
        assert proc.returncode == 2, proc.stdout
        assert (f'{tool}: error: MASTER_ADDR: NNODES=2 needs the address of node 0 (the node '
                'with NODE_RANK=0), the same on every node; it is not set') in proc.stdout


def test_dist_train_node_command(tmp_path):
    """What node 1 of two 8-GPU nodes runs: torchrun with the node's rank, node 0's address and
    the port, 8 processes, train.py's flags intact (recorded by a stand-in interpreter)."""
    fake_python = tmp_path / 'python'
    record = tmp_path / 'argv'
    fake_python.write_text(f'#!/bin/sh\nprintf "%s\\0" "$@" > {record}\n')
    fake_python.chmod(0o755)
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', QUICKSTART, '8', '--cfg-options', 'a=two words'],
        cwd=REPO, env={'PATH': '/usr/bin:/bin', 'PYTHON': str(fake_python), 'NNODES': '2',
                       'NODE_RANK': '1', 'MASTER_ADDR': '10.1.2.3', 'PORT': '29611'},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    argv = [a.decode() for a in record.read_bytes().split(b'\0')[:-1]]
    assert argv == ['-m', 'torch.distributed.run', '--nnodes=2', '--node_rank=1',
                    '--master_addr=10.1.2.3', '--nproc_per_node=8', '--master_port=29611',
                    'tools/train.py', QUICKSTART, '--launcher', 'pytorch', '--cfg-options',
                    'a=two words']
