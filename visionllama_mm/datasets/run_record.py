"""What a data-writing tool was run on, so that an output is never resumed, completed or reused
for another input.

Every resumable tool and dataset writer of this package (``extract_latents.py``,
``tokenize_sentences.py``, ``build_sentences.py``, ``digit_captions.py``, ``DigitsDataset``,
``SamplePhotoTiles``) stores a *run record* beside its output: a flat JSON dict of its inputs (the
dataset's identity and a fingerprint of its samples, the frozen model's weights checksum, the
settings that change the bytes written). A later run into the same place compares the record it
would write with the stored one and refuses a difference with one error naming every differing
field (then and now) -- never a mixed or silently reused output. ``--overwrite`` (or
``overwrite=True``) removes the tool's own files and starts over on purpose.

Written here rather than taken from mmengine: mmengine's resume restores a training state from a
checkpoint; it has no notion of an output folder's provenance.
"""
import json
import os
import os.path as osp
import shutil
from typing import Callable, Dict, Iterable, Optional, Sequence

from ..utils.checksums import json_fingerprint
from ..utils.files import write_json

__all__ = ['RunRecordMismatch', 'read_record', 'write_record', 'record_differences',
           'check_record', 'check_folder_record', 'remove_outputs', 'foreign_entries',
           'json_fingerprint', 'list_fingerprint', 'RECORD_FILE']


class RunRecordMismatch(ValueError):
    """An output written for other inputs; the message names the fields (then, now)."""


def write_record(path: str, record: dict) -> None:
    """Write ``record`` as JSON, atomically (a temporary file renamed over ``path``)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    write_json(path, record, fsync=True, sort_keys=True)


def read_record(path: str) -> Optional[dict]:
    """The record at ``path``, ``None`` when there is none; an error naming an unreadable one."""
    if not osp.isfile(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise RunRecordMismatch(f'{path} is not a readable run record ({err}); delete it or '
                                'start over with --overwrite.') from err
    if not isinstance(record, dict):
        raise RunRecordMismatch(f'{path} is not a run record (a JSON object); delete it or '
                                'start over with --overwrite.')
    return record


def _flat(record: dict, prefix: str = '') -> Dict[str, object]:
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(_flat(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def record_differences(then: dict, now: dict, ignore: Sequence[str] = ()) -> Dict[str, tuple]:
    """``{dotted field: (then, now)}`` of the fields that differ (nested dicts are compared field
    by field; a field missing on one side is ``None`` there). Fields in ``ignore`` (dotted names)
    are informative only (e.g. the path a config was read from)."""
    a, b = _flat(json.loads(json.dumps(then))), _flat(json.loads(json.dumps(now)))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
            if k not in ignore and a.get(k) != b.get(k)}


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def check_record(then: Optional[dict], now: dict, where: str, *, what: str = 'written',
                 ignore: Sequence[str] = (), hint: str = 'pass --overwrite to start over, '
                 'or use another folder') -> None:
    """Raise :class:`RunRecordMismatch` when ``then`` (the stored record) and ``now`` differ.

    The message: ``{where} was {what} for other inputs: field: then -> now; ...; {hint}.``
    """
    if then is None:
        return
    changed = record_differences(then, now, ignore)
    if changed:
        fields = '; '.join(f'{k}: {_short(a)} (then) -> {_short(b)} (now)'
                           for k, (a, b) in changed.items())
        raise RunRecordMismatch(f'{where} was {what} for other inputs: {fields}. Refusing to '
                                f'mix or reuse it; {hint}.')


def foreign_entries(folder: str, own: Iterable[str]) -> list:
    """Names in ``folder`` that are not in ``own`` (nor their ``.tmp`` leftovers)."""
    if not osp.isdir(folder):
        return []
    own = set(own)
    return sorted(name for name in os.listdir(folder)
                  if name not in own and not (name.endswith('.tmp')
                                              and name[:-len('.tmp')] in own)
                  and not name.endswith('.tmp.npz'))


def remove_outputs(folder: str, own: Iterable[str]) -> list:
    """Delete the entries ``own`` of ``folder`` (files or folders, and their ``.tmp``
    leftovers) for ``--overwrite``; returns the names removed. Anything else in the folder is
    left alone (callers refuse folders holding other files first)."""
    removed = []
    for name in own:
        for entry in (name, name + '.tmp'):
            path = osp.join(folder, entry)
            if osp.isdir(path) and not osp.islink(path):
                shutil.rmtree(path)
            elif osp.lexists(path):
                os.remove(path)
            else:
                continue
            removed.append(entry)
    return removed


def list_fingerprint(items: Sequence, ends: int = 8) -> str:
    """Cheap fingerprint of a long sample list: its length and the first and last ``ends``
    items (two datasets of the same size differ there unless their lists are the same)."""
    items = list(items)
    picked = items if len(items) <= 2 * ends else items[:ends] + items[-ends:]
    return f'{len(items)}:{json_fingerprint(picked)}'


RECORD_FILE = 'run_record.json'


def first_listed_image_width(data_root: str) -> int:
    """Width of the first image listed in ``data_root/meta/train.txt`` (an ImageNet-format folder:
    ``<path> [label]`` per line); describes folders written before run records existed."""
    from PIL import Image
    with open(osp.join(data_root, 'meta', 'train.txt')) as f:
        first = f.readline().split()[0]
    with Image.open(osp.join(data_root, first)) as img:
        return img.size[0]


def check_folder_record(data_root: str, record: dict, owner: str,
                        legacy: Optional[Callable[[str], dict]] = None) -> None:
    """For datasets written on first use: ``data_root`` (complete, ours) must have been written
    with the parameters of ``record`` (stored as ``data_root/run_record.json`` by the writer).
    A folder from before records were written is described by ``legacy(data_root)`` (read from
    its files) when given, else accepted. Raises :class:`RunRecordMismatch` naming the fields."""
    then = read_record(osp.join(data_root, RECORD_FILE))
    if then is None and legacy is not None:
        then = dict(record, **legacy(data_root))
    check_record(then, record, f'{owner}: data_root {data_root}', what='written',
                 hint='point data_root at another folder for these parameters (the data are '
                 'written there on first use), or delete this one')
