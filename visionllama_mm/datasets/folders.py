"""Datasets this package writes on first use (digits, sample-photo tiles) share one rule: the folder
appears whole or not at all, and a folder that was not written by us is never written into."""
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable

__all__ = ['write_folder_once']

DONE_MARKER = '.complete'


def write_folder_once(data_root: str, write: Callable[[str], None], owner: str) -> str:
    """Fill ``data_root`` with ``write(folder)`` unless it is already complete; returns it.

    ``write`` fills a temporary folder beside ``data_root``, which gets the completion marker and
    is renamed into place (atomic): a crash leaves no half-written dataset, and several processes
    preparing the same root at once all end with the same one (the losers' copies are removed).
    A file or a non-empty folder without the marker is refused: it is not ours to overwrite.
    ``owner`` names the dataset in the error (e.g. ``'DigitsDataset'``).
    """
    if osp.exists(osp.join(data_root, DONE_MARKER)):
        return data_root
    foreign = osp.isfile(data_root) or (osp.isdir(data_root) and bool(os.listdir(data_root)))
    # the marker is checked again: another process may have just renamed its folder into place
    if foreign and not osp.exists(osp.join(data_root, DONE_MARKER)):
        raise ValueError(
            f'{owner}: data_root {data_root} exists but is not a folder written by {owner} (it has '
            f'no {DONE_MARKER} marker). Point data_root at a new or empty folder (the data are '
            'written there on first use), or delete this one.')
    parent = osp.dirname(osp.abspath(data_root)) or '.'
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.writing-', dir=parent)
    try:
        write(tmp)
        open(osp.join(tmp, DONE_MARKER), 'w').close()
        try:
            os.rename(tmp, data_root)  # replaces an empty folder too
        except OSError:
            if not osp.exists(osp.join(data_root, DONE_MARKER)):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data_root
