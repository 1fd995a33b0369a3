"""Checks shared by the ``torch.compile`` tests of every family.

* :func:`assert_no_graph_breaks`: ``torch._dynamo.explain`` of a callable; fails with the break
  reasons (and where they happen) when there is any.
* :func:`compiled_frames`: how many frames dynamo compiled while a callable ran over several
  inputs (a counting backend that runs the graphs eagerly, so it is cheap): equal frame counts
  after the first and the last step mean no recompilation.
* :func:`assert_one_graph_no_recompile`: both at the cost of one trace per step: one frame after
  the first step (no break) and no new frame after the others; on failure the break reasons.
* :func:`train_losses`: the per-iteration losses of ``tools/train.py`` on a config (eager, or
  with ``--compile``), read from the run's ``scalars.json``.
"""
import glob
import json
import os.path as osp
from typing import Callable, List, Sequence

import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounter

from .conftest import REPO, run_tool


def assert_no_graph_breaks(fn: Callable, *args, **kwargs):
    """``torch._dynamo.explain(fn)(*args, **kwargs)`` has one graph and no break."""
    torch._dynamo.reset()
    try:
        explain = torch._dynamo.explain(fn)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    reasons = [f'{r.reason.splitlines()[0] if r.reason else r} at '
               f'{r.user_stack[-1] if r.user_stack else "?"}' for r in explain.break_reasons]
    assert explain.graph_break_count == 0, (
        f'{explain.graph_break_count} graph break(s):\n' + '\n'.join(reasons))
    assert explain.graph_count == 1, f'{explain.graph_count} graphs'
    return explain


def compiled_frames(fn: Callable, inputs: Sequence[tuple], backward: bool = False) -> List[int]:
    """Run ``torch.compile(fn, backend=counter)`` on each args tuple of ``inputs`` (calling
    ``.backward()`` on a scalar result when ``backward``) -> frames compiled after each step."""
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(fn, backend=counter)
    counts = []
    try:
        for args in inputs:
            out = compiled(*args)
            if backward:
                out.backward()
            counts.append(counter.frame_count)
    finally:
        torch._dynamo.reset()
    return counts


def assert_one_graph_no_recompile(fn: Callable, inputs: Sequence[tuple], backward: bool = False):
    """``fn`` compiles to one graph at the first step and never again over ``inputs``."""
    frames = compiled_frames(fn, inputs, backward=backward)
    if frames[0] != 1:
        assert_no_graph_breaks(fn, *inputs[0])  # fails with the reasons
    assert frames == [1] * len(inputs), f'compiled frames after each step: {frames}'


def train_losses(python: str, config: str, work_dir: str, *options: str,
                 compile=False, backend: str = 'inductor', timeout: int = 900) -> List[float]:
    """``tools/train.py config --work-dir work_dir --no-validate [--compile] --cfg-options
    *options`` (the logger at every iteration) -> the logged ``loss`` of each iteration.

    ``compile``: False, True (``--compile``) or a dict of inductor options added as
    ``compile.options.<k>=<v>`` (e.g. ``{'fallback_random': True}``: random ops inside the
    compiled forward then draw eager's numbers, so losses can be compared). ``backend``: the
    ``torch.compile`` backend (``compile.backend=``) when compiling."""
    args = [python, 'tools/train.py', config, '--work-dir', work_dir, '--no-validate']
    if compile:
        args.append('--compile')
    extra = []
    if compile and backend != 'inductor':  # other backends run eager kernels: eager's numbers
        extra.append(f'compile.backend={backend}')
    elif isinstance(compile, dict):
        extra = [f'compile.options.{k}={v}' for k, v in compile.items()]
    run_tool([*args, '--cfg-options', 'default_hooks.logger.interval=1', *extra, *options],
             cwd=REPO, timeout=timeout)
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert scalars, f'no scalars.json under {work_dir}'
    with open(scalars[-1]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r['loss'] for r in rows if 'loss' in r]
