"""Each version shim of visionllama_mm.compat, with the reason it exists."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

import visionllama_mm  # noqa: F401
from visionllama_mm import compat
from .conftest import REPO, free_port


def test_shims_applied_once():
    shims = ['cpu_dist_init', 'weights_only_loader', 'cpu_half_ops', 'cpu_mask_paste',
             'compile_model_forward', 'retrieval_metrics_numpy2']
    assert compat.applied() == shims
    compat.apply_all()
    assert compat.applied() == shims


def test_pkg_resources_available_for_cross_package_configs(tmp_path):
    # mmengine 0.10.7 resolves `mmpretrain::` bases with pkg_resources (setuptools < 81 pinned)
    import pkg_resources  # noqa: F401
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']\n")
    cfg = Config.fromfile(str(child))
    assert cfg.model.backbone.type == 'ResNet'


def test_cpu_dist_init_uses_gloo_without_cuda(tmp_path):
    # stock _init_dist_pytorch calls torch.cuda.set_device -> "Found no NVIDIA driver" on CPU
    code = (
        'import visionllama_mm, torch, torch.distributed as dist\n'
        'from mmengine.dist import init_dist\n'
        'init_dist("pytorch", backend="nccl")\n'
        'print("backend", dist.get_backend(), dist.get_world_size())\n')
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')
    out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'backend gloo 1' in out.stdout


def _mmengine_style_checkpoint(path):
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(1.5)
    torch.save({
        'meta': {'epoch': 1, 'iter': 10, 'seed': 0},
        'state_dict': {'w': torch.ones(2)},
        'message_hub': {'log_scalars': {'train/loss': buf},
                        'runtime_info': {'epoch': 1, 'np': np.float64(2.0), 'arr': np.zeros(3)},
                        'resumed_keys': {'train/loss': True}},
    }, path)


def test_weights_only_loader_reads_mmengine_checkpoints(tmp_path):
    # torch >= 2.6 weights_only=True rejects mmengine's HistoryBuffer; we allow only that and numpy
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    path = str(tmp_path / 'epoch_1.pth')
    _mmengine_style_checkpoint(path)
    assert getattr(CheckpointLoader._get_checkpoint_loader(path), '_visionllama_mm_shim', False)
    ckpt = _load_checkpoint(path, map_location='cpu')
    assert ckpt['message_hub']['log_scalars']['train/loss'].current() == 1.5
    assert torch.equal(ckpt['state_dict']['w'], torch.ones(2))


class _Payload:

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_weights_only_loader_refuses_code(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'x': _Payload()}, path)
    with pytest.raises(RuntimeError, match='Refusing to load .*evil.pth.*system'):
        _load_checkpoint(path, map_location='cpu')


def test_weights_only_loader_names_files_that_are_not_checkpoints(tmp_path):
    # torch's own message for these is unpickling advice about weights_only, without the file
    from mmengine.runner.checkpoint import _load_checkpoint
    legacy = str(tmp_path / 'legacy.pth')  # torch < 1.6 format (a pickle, not a zip) still loads
    torch.save({'state_dict': {'w': torch.ones(10000)}}, legacy,
               _use_new_zipfile_serialization=False)
    assert torch.equal(_load_checkpoint(legacy)['state_dict']['w'], torch.ones(10000))
    with open(legacy, 'rb') as f:
        data = f.read()
    (tmp_path / 'legacy_half.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='legacy_half.pth is truncated or corrupt'):
        _load_checkpoint(str(tmp_path / 'legacy_half.pth'))
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty.pth is not a torch checkpoint: it is empty'):
        _load_checkpoint(str(tmp_path / 'empty.pth'))


def test_mmcv_nms_and_roi_align_take_bf16_on_cpu():
    """mmcv's CPU kernels are float32-only; under bf16 autocast mmdet hands them bf16 tensors."""
    from mmcv.ops import RoIAlign, batched_nms
    assert 'cpu_half_ops' in compat.applied()
    torch.manual_seed(0)
    boxes = torch.rand(20, 4) * 10
    boxes[:, 2:] += boxes[:, :2]
    scores, idxs = torch.rand(20), torch.zeros(20, dtype=torch.long)
    ref, keep_ref = batched_nms(boxes.bfloat16().float(), scores.bfloat16().float(), idxs,
                                dict(type='nms', iou_threshold=0.5))
    dets, keep = batched_nms(boxes.bfloat16(), scores.bfloat16(), idxs,
                             dict(type='nms', iou_threshold=0.5))
    assert torch.equal(keep, keep_ref) and torch.allclose(dets, ref)
    feats = torch.randn(1, 8, 16, 16)
    rois = torch.tensor([[0, 1., 1., 9., 9.]])
    op = RoIAlign((7, 7), 1.0, sampling_ratio=0)
    out = op(feats.bfloat16(), rois.bfloat16())
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), op(feats.bfloat16().float(), rois.bfloat16().float()),
                          atol=1e-2)


def test_cpu_mask_paste_of_boxes_beyond_the_image():
    """A 683x1024 image padded to 1024x1024: boxes predicted in the padding paste nothing on the
    CPU path (mmdet raised a RuntimeError); boxes inside paste as before."""
    from mmdet.models.roi_heads.mask_heads import fcn_mask_head
    masks = torch.rand(2, 1, 28, 28)
    outside = torch.tensor([[10., 700., 200., 900.], [300., 690., 400., 1000.]])
    pasted, inds = fcn_mask_head._do_paste_mask(masks, outside, 683, 1024, skip_empty=True)
    assert pasted.shape == (2, 0, 0)
    im = torch.zeros(2, 683, 1024)
    im[(slice(None), ) + inds] = pasted  # what FCNMaskHead does with the result
    inside = torch.tensor([[10., 20., 200., 300.], [300., 400., 400., 600.]])
    pasted, (ys, xs) = fcn_mask_head._do_paste_mask(masks, inside, 683, 1024, skip_empty=True)
    assert pasted.shape == (2, ys.stop - ys.start, xs.stop - xs.start) and pasted.max() > 0


def test_compile_true_compiles_the_model_forward_not_the_optimizer(tmp_path):
    """``compile=dict(...)``: the Runner trains with the model's forward compiled (one graph,
    the config's options passed on) while ``train_step`` and the optimizer stay eager."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch._dynamo.testing import CompileCounter

    class Toy(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
            return dict(loss=out.square().mean()) if mode == 'loss' else out

    counter = CompileCounter()
    backend = f'visionllama_mm_counter_{os.getpid()}'
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(counter, name=backend)
    data = [dict(inputs=torch.randn(4)) for _ in range(8)]
    runner = Runner(model=Toy(), work_dir=str(tmp_path), cfg=dict(compile=dict(backend=backend)),
                    train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(
                        type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate')),
                    optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.1)),
                    train_cfg=dict(by_epoch=False, max_iters=3), default_hooks=dict(
                        checkpoint=dict(type='CheckpointHook', interval=100)))
    before = runner.model.linear.weight.detach().clone()
    runner.train()
    torch._dynamo.reset()
    assert counter.frame_count == 1  # the loss forward, compiled once for the 3 iterations
    assert runner.model._compiled_call_impl is not None
    assert 'train_step' not in vars(runner.model)  # the stock wrapper would have replaced it
    assert not torch.equal(runner.model.linear.weight, before)  # the eager optimizer stepped


def test_each_shim_is_guarded_by_the_versions_it_fixes():
    """A shim applies where the installed versions are those whose behaviour it fixes (the
    supported torch 2.11 to 2.14 included) and is skipped, with the reason, elsewhere."""
    guards = {name: (g, ops) for name, g, ops, _ in compat.SHIMS}
    assert guards == {
        'cpu_dist_init': ((('mmengine', None, '0.10.7'), ), False),
        'weights_only_loader': ((('torch', '2.6', None), ('mmengine', None, '0.10.7')), False),
        'cpu_half_ops': ((('mmcv', None, '2.1.0'), ), True),
        'cpu_mask_paste': ((('mmdet', None, '3.3.0'), ), True),
        'compile_model_forward': ((('mmengine', None, '0.10.7'), ), False),
        'retrieval_metrics_numpy2': ((('mmpretrain', None, '1.2.0'), ('numpy', '2.0', None)),
                                     False),
    }
    pinned = dict(torch='2.14.1', mmengine='0.10.7', mmcv='2.1.0', mmdet='3.3.0',
                  mmpretrain='1.2.0', numpy='2.4.6')
    for torch_version in ('2.11.0', '2.14.1+cu126', '2.14.1'):
        for g, ops in guards.values():
            assert compat.why_not(g, ops, dict(pinned, torch=torch_version), True) is None
    assert compat.why_not(*guards['cpu_dist_init'], dict(pinned, mmengine='0.10.8'), True) == (
        'mmengine 0.10.8 is not <= 0.10.7, the versions whose behaviour it fixes')
    assert compat.why_not(*guards['weights_only_loader'], dict(pinned, torch='2.5.1'), True) == (
        'torch 2.5.1 is not >= 2.6, the versions whose behaviour it fixes')
    assert compat.why_not(*guards['cpu_half_ops'], pinned, False) == (
        'mmcv was built without its compiled ops (no mmcv._ext)')
    assert compat.why_not(*guards['cpu_mask_paste'], dict(pinned, mmdet=None), True) == (
        'mmdet is not installed')
    # this environment: every shim applies
    assert compat.skipped() == {} and compat.mmcv_has_ops()
    assert compat.installed_version('torch') == torch.__version__
    assert compat.installed_version('mmengine') == '0.10.7'


def test_shims_without_mmcv_ops():
    """An mmcv built without its ops (``MMCV_WITH_OPS=0``) has no ``mmcv._ext``: the shims that
    patch mmcv's ops and mmdet's models are skipped, the others applied (``mmcv._ext`` is hidden
    here as an ops-less mmcv lacks it)."""
    path = osp.join(REPO, 'visionllama_mm', 'compat.py')
    code = (
        'import importlib.util, sys\n'
        'sys.modules["mmcv._ext"] = None\n'
        f'spec = importlib.util.spec_from_file_location("compat", {path!r})\n'
        'compat = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(compat)\n'
        'compat.apply_all()\n'
        'print(compat.applied())\n'
        'print(sorted(compat.skipped().items()))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        "['cpu_dist_init', 'weights_only_loader', 'compile_model_forward', "
        "'retrieval_metrics_numpy2']",
        "[('cpu_half_ops', 'mmcv was built without its compiled ops (no mmcv._ext)'), "
        "('cpu_mask_paste', 'mmcv was built without its compiled ops (no mmcv._ext)')]"]


def test_retrieval_metrics_run_on_numpy_without_in1d():
    """mmpretrain's RetrievalRecall / RetrievalAveragePrecision give their docstrings' values
    (NumPy 2.4 has no ``np.in1d``, which the stock code calls)."""
    from mmpretrain.evaluation import RetrievalAveragePrecision, RetrievalRecall
    recall = RetrievalRecall.calculate([[0], [1], [2], [3]], [[0, 1], [2], [1], [0, 3]], topk=1,
                                       pred_indices=True, target_indices=True)
    assert [float(r) for r in recall] == [50.0]
    score = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.1, 0.7]])
    recall = RetrievalRecall.calculate(score, torch.tensor([[0, 0, 0, 1], [0, 0, 1, 0]]),
                                       topk=(1, 2, 4))
    assert [float(r) for r in recall] == [0.0, 0.0, 100.0]  # hits at ranks 3 and 4
    pred = [torch.arange(100)] * 3
    target = [[0, 3, 6, 8, 35], [1, 2, 54, 105], [2, 42, 205]]
    assert RetrievalAveragePrecision.calculate(pred, target, 10, True, True) == pytest.approx(
        29.246031746031747)
    scores = np.array([np.linspace(0.95, 0.05, 10)] * 2)
    relevant = torch.tensor([[1, 0, 1, 0, 0, 1, 0, 0, 1, 1]] * 2)
    assert RetrievalAveragePrecision.calculate(scores, relevant, 10) == pytest.approx(
        62.222222222222214)
    # 'integrate': (1 + 1) / 2, (1/2 + 2/3) / 2, (2/5 + 3/6) / 2, (3/8 + 4/9) / 2, (4/9 + 5/10) / 2
    assert RetrievalAveragePrecision.calculate(scores, relevant, 10, mode='integrate') == \
        pytest.approx(100 * (1 + 7 / 12 + 9 / 20 + 59 / 144 + 17 / 36) / 5)
