"""File helpers shared by the datasets, the engine and the tools: atomic writes and JSON-lines
reading with line-numbered errors."""
import json
import os
import os.path as osp
from contextlib import contextmanager
from typing import IO, Iterator, Optional, Tuple

__all__ = ['temporary_name', 'replace_atomically', 'atomic_path', 'atomic_write', 'write_json',
           'read_jsonl']


def temporary_name(path: str, keep_ext: bool = False) -> str:
    """The temporary name a file is written under before it is renamed to ``path``, in the same
    folder (a rename across file systems would not be atomic): ``path + '.tmp'``, or with
    ``keep_ext`` ``'x.tmp.npz'`` for ``'x.npz'`` (for writers that add an extension, such as
    ``np.save`` / ``np.savez``)."""
    if keep_ext:
        root, ext = osp.splitext(path)
        return f'{root}.tmp{ext}'
    return path + '.tmp'


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(tmp: str, path: str, fsync: bool = False) -> None:
    """Rename ``tmp`` over ``path`` (``os.replace``: atomic on POSIX and Windows). ``fsync``
    first flushes the file to disk and afterwards the folder's entry, so that a crash leaves the
    old or the new file, never an empty one (checkpoints, run records)."""
    if fsync:
        _fsync(tmp)
    os.replace(tmp, path)
    if fsync and os.name == 'posix':
        _fsync(osp.dirname(osp.abspath(path)))


@contextmanager
def atomic_path(path: str, tmp: Optional[str] = None, fsync: bool = False,
                keep_ext: bool = False) -> Iterator[str]:
    """Yield a temporary file name beside ``path`` (:func:`temporary_name`, or ``tmp``) for any
    writer (``np.save``, ``tarfile``, ``zipfile`` ...); when the block ends, it is renamed over
    ``path`` (:func:`replace_atomically`); if the block raises, the temporary file is removed and
    ``path`` is left as it was."""
    tmp = tmp or temporary_name(path, keep_ext)
    try:
        yield tmp
        replace_atomically(tmp, path, fsync)
    except BaseException:
        if osp.isfile(tmp):
            os.remove(tmp)
        raise


@contextmanager
def atomic_write(path: str, mode: str = 'w', fsync: bool = False, tmp: Optional[str] = None,
                 **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through a temporary file: readers of ``path`` see the old content or
    the whole new one, never a half-written file (see :func:`atomic_path`)."""
    with atomic_path(path, tmp, fsync) as name:
        with open(name, mode, **open_kwargs) as f:
            yield f


def write_json(path: str, obj, fsync: bool = False, **dump_kwargs) -> None:
    """``json.dump(obj)`` to ``path`` atomically (:func:`atomic_write`); ``dump_kwargs`` go to
    ``json.dump`` (``indent=1`` unless given)."""
    dump_kwargs.setdefault('indent', 1)
    with atomic_write(path, fsync=fsync) as f:
        json.dump(obj, f, **dump_kwargs)


def read_jsonl(path: str) -> Iterator[Tuple[int, object]]:
    """``(line number, value)`` of every non-blank line of a JSON-lines file, numbered from 1.

    A line that is not UTF-8 or not JSON raises ``ValueError`` naming the file and line:
    ``'<path>:<n>: not UTF-8 text (...)'`` / ``'<path>:<n>: not a JSON object (...)'``. What a
    value must hold is the caller's check (name the line with ``f'{path}:{n}'``)."""
    with open(path, 'rb') as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode('utf-8')
            except UnicodeDecodeError as err:
                raise ValueError(f'{path}:{number}: not UTF-8 text ({err}).') from None
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{number}: not a JSON object ({err.msg}).') from None
            yield number, value
