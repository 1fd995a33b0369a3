"""Argument types for the command-line tools under ``tools/``.

Each helper is an ``argparse`` ``type=`` callable: it returns the converted value or raises
:class:`argparse.ArgumentTypeError`, which ``argparse`` turns into one line naming the tool, the
argument, the value and what is allowed, e.g.::

    train.py: error: argument config: no such file: 'configs/typo.py'
    benchmark.py: error: argument --batch-size: must be an integer >= 1, got '0'

so every argument is checked at start-up, before a config is read or a model is built. argparse's
own ``type=int`` only says "invalid int value"; these say what is allowed.
"""
import argparse
import os.path as osp
import re

__all__ = ['positive_int', 'non_negative_int', 'int_range', 'positive_float',
           'non_negative_float', 'float_range', 'probability', 'seed', 'existing_file',
           'existing_dir', 'config_file', 'checkpoint_file', 'output_file', 'output_dir',
           'device', 'image_output_file', 'image_file_suffixes']

#: config suffixes ``mmengine.Config.fromfile`` reads
CONFIG_SUFFIXES = ('.py', '.json', '.yaml', '.yml')
#: image suffixes PIL writes and reads (``--out`` of image writers, ``--prompt`` folders)
image_file_suffixes = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif', '.tiff')
# checkpoint locations mmengine's loaders resolve themselves (not local files)
_REMOTE = re.compile(r'^[a-z][a-z0-9+.-]*://', re.IGNORECASE)


def _fail(message: str):
    raise argparse.ArgumentTypeError(message)


def _named(fn, name):
    fn.__name__ = name  # argparse names the type in its fallback messages
    return fn


def _int(text, what):
    try:
        return int(text)
    except (TypeError, ValueError):
        _fail(f'must be {what}, got {text!r}')


def _float(text, what):
    try:
        value = float(text)
    except (TypeError, ValueError):
        _fail(f'must be {what}, got {text!r}')
    if value != value or value in (float('inf'), float('-inf')):
        _fail(f'must be {what}, got {text!r}')
    return value


def int_range(low=None, high=None):
    """An integer in ``[low, high]`` (either end open when ``None``)."""
    if low is not None and high is not None:
        what = f'an integer in [{low}, {high}]'
    elif low is not None:
        what = f'an integer >= {low}'
    elif high is not None:
        what = f'an integer <= {high}'
    else:
        what = 'an integer'

    def check(text):
        value = _int(text, what)
        if (low is not None and value < low) or (high is not None and value > high):
            _fail(f'must be {what}, got {text!r}')
        return value
    return _named(check, what)


positive_int = _named(int_range(1), 'positive_int')
non_negative_int = _named(int_range(0), 'non_negative_int')
#: seeds of torch / numpy generators: non-negative and below 2**32 (numpy's limit)
seed = _named(int_range(0, 2**32 - 1), 'seed')


def float_range(low=None, high=None, low_open=False, high_open=False):
    """A finite float between ``low`` and ``high`` (``*_open``: that end excluded)."""
    parts = []
    if low is not None:
        parts.append(f'{">" if low_open else ">="} {low:g}')
    if high is not None:
        parts.append(f'{"<" if high_open else "<="} {high:g}')
    what = 'a number' + (' ' + ' and '.join(parts) if parts else '')
    if low is not None and high is not None:
        what = (f'a number in {"(" if low_open else "["}{low:g}, {high:g}'
                f'{")" if high_open else "]"}')

    def check(text):
        value = _float(text, 'a finite ' + what[2:])
        if low is not None and (value < low or (low_open and value == low)):
            _fail(f'must be {what}, got {text!r}')
        if high is not None and (value > high or (high_open and value == high)):
            _fail(f'must be {what}, got {text!r}')
        return value
    return _named(check, what)


positive_float = _named(float_range(0, low_open=True), 'positive_float')
non_negative_float = _named(float_range(0), 'non_negative_float')
probability = _named(float_range(0, 1), 'probability')


def existing_file(text):
    """A path to an existing file."""
    if osp.isdir(text):
        _fail(f'{text!r} is a folder, not a file')
    if not osp.isfile(text):
        _fail(f'no such file: {text!r}')
    return text


def existing_dir(text):
    """A path to an existing folder."""
    if osp.isfile(text):
        _fail(f'{text!r} is a file, not a folder')
    if not osp.isdir(text):
        _fail(f'no such folder: {text!r}')
    return text


def config_file(text):
    """An existing config file that ``mmengine.Config.fromfile`` reads (.py, .json, .yaml)."""
    existing_file(text)
    if not text.lower().endswith(CONFIG_SUFFIXES):
        _fail(f'{text!r} is not a config file: expected one of {", ".join(CONFIG_SUFFIXES)}')
    return text


def checkpoint_file(text):
    """An existing checkpoint file, or a URL (``https://``, ``s3://``, ...) left to mmengine."""
    if _REMOTE.match(text):
        return text
    return existing_file(text)


def _writable_parent(text, kind):
    """The nearest existing ancestor of ``text`` must be a folder (the rest is created)."""
    parent = osp.dirname(osp.abspath(text))
    while not osp.exists(parent):
        parent = osp.dirname(parent)
    if not osp.isdir(parent):
        _fail(f'cannot write the {kind} {text!r}: {parent!r} is a file, not a folder')


def output_file(text):
    """A file to write: not an existing folder, and no file in the way of its parent folders
    (missing parent folders are created by the tool)."""
    if not text:
        _fail('an output file name is needed, got an empty string')
    if osp.isdir(text):
        _fail(f'{text!r} is a folder; give a file name')
    _writable_parent(text, 'file')
    return text


def output_dir(text):
    """A folder to write into: an existing folder or a new one (created by the tool)."""
    if not text:
        _fail('an output folder is needed, got an empty string')
    if osp.exists(text) and not osp.isdir(text):
        _fail(f'{text!r} is a file, not a folder')
    _writable_parent(text, 'folder')
    return text


def device(text):
    """A torch device string (``cpu``, ``cuda``, ``cuda:1``, ...) that this machine has."""
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        _fail(f'{text!r} is not a torch device (e.g. cpu, cuda, cuda:0)')
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            _fail(f'{text!r}: CUDA is not available on this machine; use cpu')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            _fail(f'{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)')
    return text


def image_output_file(text):
    """An :func:`output_file` whose suffix names an image format PIL writes."""
    output_file(text)
    if not text.lower().endswith(image_file_suffixes):
        _fail(f'{text!r}: the suffix must name an image format, one of '
              f'{", ".join(image_file_suffixes)}')
    return text
