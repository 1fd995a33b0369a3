"""WinoGAViL (DataComp's ``misc/winogavil``) read from the Hugging Face dataset's table files.

Each row of the test split is one game: a ``cue`` word, the ``candidates`` (5-12 names), one image
per candidate (``candidate_images``) and the ``associations`` (the candidates that go with the
cue). The rows are read with ``pyarrow`` from either of two layouts, without the ``datasets``
library and without running the dataset's loading script:

* the Hub's parquet conversion of the dataset::

      huggingface-cli download nlphuji/winogavil --repo-type dataset \\
          --revision refs/convert/parquet --local-dir <data root>/winogavil

  (``default/test/*.parquet``; the image bytes are embedded);
* the ``datasets`` cache that DataComp's ``download_evalsets.py <data root>`` writes,
  ``<data root>/hf_cache/nlphuji___winogavil/<config>/<version>/<hash>/winogavil-test.arrow``
  (Arrow IPC stream; the images are paths to the files ``datasets`` extracted).

A file belongs to the split when ``test`` is one of the words of its path below the folder
(``default/test/0000.parquet``, ``winogavil-test.arrow``); parquet files are preferred to arrow
files, and the split's files must lie in one folder (a cache that holds two downloads is refused).
``candidate_images`` is a list of the ``datasets`` ``Image`` feature's struct ``{bytes: binary,
path: string}``: the bytes when present, else the file at ``path`` (relative paths from the table
file's folder). This layout is the ``datasets`` library's; it was checked on fixture files written
with ``pyarrow`` in that schema, not on the real download. The Hub may ask you to accept the
dataset's terms and to log in (``huggingface-cli login``) before the download.
"""
import os
import os.path as osp
import re
import warnings
from typing import List, Optional, Tuple

import torch
from mmengine.dataset import BaseDataset

from ..registry import DATASETS
from .image_text import build_pipeline
from .transforms import decode_image
from .wds_benchmark import _loads_files

__all__ = ['WinoGAViLDataset', 'find_winogavil_tables', 'winogavil_download_command']

COLUMNS = ('cue', 'candidates', 'associations', 'candidate_images')
IMAGES = 'candidate_images'
HUB_REPO = 'nlphuji/winogavil'


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise ImportError('WinoGAViLDataset reads the dataset\'s parquet / arrow tables with '
                          'pyarrow, which is not installed: pip install pyarrow (the version '
                          'is pinned in requirements/runtime.txt).') from err
    return pyarrow, pyarrow.parquet


def winogavil_download_command(folder: str, hub_repo: str = HUB_REPO) -> str:
    """The command that downloads the Hub's parquet conversion of WinoGAViL into ``folder``."""
    return (f'huggingface-cli download {hub_repo} --repo-type dataset --revision '
            f'refs/convert/parquet --local-dir {folder}')


def find_winogavil_tables(folder: str, split: str = 'test') -> Tuple[str, List[str]]:
    """``('parquet' | 'arrow', files)``: the table files of ``split`` under ``folder`` (searched
    recursively, sorted), parquet when there are any; ``('', [])`` when there are none."""
    found = {'parquet': [], 'arrow': []}
    for parent, _, names in os.walk(folder):
        for name in names:
            kind = name.rsplit('.', 1)[-1]
            path = osp.join(parent, name)
            if kind in found and split in re.split(r'[\\/._-]', osp.relpath(path, folder)):
                found[kind].append(path)
    for kind in ('parquet', 'arrow'):
        if found[kind]:
            return kind, sorted(found[kind])
    return '', []


@DATASETS.register_module()
class WinoGAViLDataset(BaseDataset):
    """WinoGAViL's games, one item per game, read from the dataset's parquet or arrow tables.

    Args:
        data_root: The folder that holds the split's table files (see the module docstring).
        split: The split (``'test'``, the only one WinoGAViL has).
        task: The task's name, used in messages.
        hub_repo: The Hugging Face dataset, named in the download command of a missing folder.
        pipeline: Transforms applied to each candidate image, ``dict(img=...)``; the images come
            decoded from the table (BGR, as ``LoadImageFromFile`` reads them), so a leading
            ``LoadImageFromFile`` (a model config's test pipeline) is dropped.

    Items: ``inputs``, the candidates' images stacked (candidates, C, H, W; the pipeline's
    ``inputs``, so it must give them one size), and ``data_samples``, a ``DataSample`` with
    ``cue``, ``candidates``, ``associations`` and ``game`` (the row's ``ID`` column, or its
    index). Batches need ``pseudo_collate`` (games have 5 to 12 images). Games are checked when
    the table is read: every column present, one image per candidate, at least one association
    and every association among the candidates, and an image file for every image stored as a
    path.
    """

    def __init__(self, data_root: str, split: str = 'test', task: str = 'WinoGAViL',
                 hub_repo: Optional[str] = HUB_REPO, pipeline=(), **kwargs):
        self.folder, self.split, self.task, self.hub_repo = data_root, split, task, hub_repo
        self._open = {}  # file -> pyarrow reader / table, opened in the process that reads
        self._rows = (None, None)  # (file, row group) -> its image column, the last one read
        if not osp.isdir(data_root):
            raise FileNotFoundError(
                f'WinoGAViLDataset ({task}): the dataset folder {data_root} is missing. Download '
                f'it with: {winogavil_download_command(data_root, hub_repo or HUB_REPO)} (or '
                "point data_root at the datasets cache of DataComp's `python "
                'download_evalsets.py <data root>`, <data root>/hf_cache/nlphuji___winogavil).')
        self.kind, self.files = find_winogavil_tables(data_root, split)
        if not self.files:
            raise FileNotFoundError(
                f'WinoGAViLDataset ({task}): {data_root} holds no {split}-split table (*.parquet '
                f'or *.arrow with "{split}" in its path, e.g. default/{split}/0000.parquet or '
                f'winogavil-{split}.arrow). Download it with: '
                f'{winogavil_download_command(data_root, hub_repo or HUB_REPO)}')
        folders = sorted({osp.dirname(f) for f in self.files})
        if len(folders) > 1:
            raise ValueError(
                f'WinoGAViLDataset ({task}): {data_root} holds {split}-split {self.kind} files in '
                f'{len(folders)} folders ({", ".join(folders)}), e.g. two downloads of the '
                'dataset; keep one or point data_root at one of them.')
        if 'partial' in osp.basename(folders[0]):
            warnings.warn(f'WinoGAViLDataset ({task}): {folders[0]} is a partial parquet '
                          'conversion (the Hub converts only the first part of a large split): '
                          f'its games are not the whole {split} split.')
        pipeline = list(pipeline)
        while pipeline and _loads_files(pipeline[0]):
            pipeline.pop(0)
        super().__init__(data_root='', pipeline=[], test_mode=True, **kwargs)
        self.pipeline = build_pipeline(pipeline)

    def __getstate__(self):  # readers are opened again in each data loader worker
        state = self.__dict__.copy()
        state['_open'], state['_rows'] = {}, (None, None)
        return state

    # ------------------------------------------------------------------------------ reading
    def _reader(self, path: str):
        """A ``pyarrow.parquet.ParquetFile``, or the memory-mapped table of an arrow file."""
        if path not in self._open:
            pa, pq = _pyarrow()
            try:
                if self.kind == 'parquet':
                    reader = pq.ParquetFile(path)
                else:
                    source = pa.memory_map(path)
                    file_format = source.read(6) == b'ARROW1'
                    source.seek(0)
                    reader = (pa.ipc.open_file(source).read_all() if file_format else
                              pa.ipc.open_stream(source).read_all())
            except (pa.ArrowInvalid, OSError) as err:
                raise ValueError(f'WinoGAViLDataset ({self.task}): {path} is not a readable '
                                 f'{self.kind} table ({err}).') from err
            names = (reader.schema_arrow if self.kind == 'parquet' else reader.schema).names
            missing = [c for c in COLUMNS if c not in names]
            if missing:
                raise ValueError(f'WinoGAViLDataset ({self.task}): {path} has no column '
                                 f'{", ".join(missing)} (it has: {", ".join(names)}).')
            self._open[path] = reader
        return self._open[path]

    def _blocks(self, path: str):
        """(row group, first row, number of rows) of a table file; an arrow table is one."""
        reader = self._reader(path)
        if self.kind == 'arrow':
            return [(0, 0, reader.num_rows)]
        meta, start, out = reader.metadata, 0, []
        for g in range(meta.num_row_groups):
            out.append((g, start, meta.row_group(g).num_rows))
            start += meta.row_group(g).num_rows
        return out

    def _read(self, path: str, group: int, columns):
        """One row group of a parquet file (or the whole arrow table), only ``columns``: top-level
        names, or nested parquet paths (``candidate_images.list.element.path``)."""
        reader = self._reader(path)
        if self.kind == 'arrow':
            return reader.select([c.split('.')[0] for c in columns])
        return reader.read_row_group(group, columns=list(columns))

    def _image_column(self, path: str, group: int):
        """The ``candidate_images`` column of a row group, for checking: without the bytes when
        the parquet statistics show every image has them (then nothing large is read)."""
        if self.kind == 'parquet':
            meta = self._reader(path).metadata.row_group(group)
            leaves = {meta.column(j).path_in_schema: meta.column(j) for j in
                      range(meta.num_columns) if meta.column(j).path_in_schema.startswith(IMAGES)}
            data = [p for p in leaves if p.endswith('.bytes')]
            paths = [p for p in leaves if p.endswith('.path')]
            stats = leaves[data[0]].statistics if data else None
            if paths and stats is not None and stats.has_null_count and stats.null_count == 0:
                return self._read(path, group, paths).column(IMAGES)
        return self._read(path, group, [IMAGES]).column(IMAGES)

    def load_data_list(self) -> List[dict]:
        _pyarrow()
        import pyarrow.compute as pc
        data_list = []
        for path in self.files:
            names = self._names(path)
            for group, start, _ in self._blocks(path):
                extra = ['ID'] if 'ID' in names else []
                rows = self._read(path, group, ['cue', 'candidates', 'associations'] + extra)
                rows = rows.to_pylist()
                # the images are read per item; here only their count and, for those stored
                # without bytes, their paths
                images = self._image_column(path, group)
                counts = pc.fill_null(pc.list_value_length(images), 0).to_pylist()
                flat = pc.list_flatten(images)
                no_bytes = (pc.is_null(pc.struct_field(flat, 'bytes')).to_pylist()
                            if 'bytes' in [f.name for f in flat.type] else [False] * len(flat))
                first = 0  # the row's first image in the flattened column
                for i, row in enumerate(rows):
                    where = f'{path}: game {row.get("ID", start + i)} (row {start + i})'
                    info = self._info(path, group, i, row, where, counts[i])
                    for j in range(counts[i]):
                        if no_bytes[first + j]:
                            self._image_bytes(path, flat[first + j].as_py(), f'{where}, the '
                                              f'image of {info["candidates"][j]!r}', check=True)
                    first += counts[i]
                    data_list.append(info)
        if not data_list:
            raise ValueError(f'WinoGAViLDataset ({self.task}): the {self.split} tables in '
                             f'{self.folder} hold no game ({", ".join(self.files)}).')
        return data_list

    def _names(self, path: str) -> List[str]:
        reader = self._reader(path)
        return (reader.schema_arrow if self.kind == 'parquet' else reader.schema).names

    def _info(self, path: str, group: int, index: int, row: dict, where: str,
              num_images: int) -> dict:
        cue, candidates = row['cue'], list(row['candidates'] or [])
        associations = list(row['associations'] or [])
        if not cue or not cue.strip():
            raise ValueError(f'WinoGAViLDataset ({self.task}): {where} has an empty cue.')
        if num_images != len(candidates):
            raise ValueError(f'WinoGAViLDataset ({self.task}): {where} has {len(candidates)} '
                             f'candidates but {num_images} candidate_images.')
        if not associations:
            raise ValueError(f'WinoGAViLDataset ({self.task}): {where} has no association.')
        stray = [a for a in associations if a not in candidates]
        if stray:
            raise ValueError(f'WinoGAViLDataset ({self.task}): {where}: association(s) '
                             f'{stray} are not among its candidates {candidates}.')
        return dict(file=path, group=group, index=index, cue=cue, candidates=candidates,
                    associations=associations, game=row.get('ID', None), where=where)

    def _image_bytes(self, table: str, image: Optional[dict], where: str,
                     check: bool = False) -> Optional[bytes]:
        """The encoded bytes of one ``Image`` struct (or, with ``check``, only whether its file
        exists when it has no bytes)."""
        image = image or {}
        if image.get('bytes') is not None:
            return None if check else image['bytes']
        if not image.get('path'):
            raise ValueError(f'WinoGAViLDataset ({self.task}): {where} has neither bytes nor a '
                             'path.')
        file = image['path'] if osp.isabs(image['path']) else \
            osp.join(osp.dirname(table), image['path'])
        if not osp.isfile(file):
            raise FileNotFoundError(f'WinoGAViLDataset ({self.task}): {where} is stored as the '
                                    f'path {file}, which does not exist (the table holds no '
                                    'bytes for it).')
        if check:
            return None
        with open(file, 'rb') as f:
            return f.read()

    def _images(self, info: dict) -> list:
        key = (info['file'], info['group'])
        if self._rows[0] != key:
            self._rows = (key, self._read(*key, [IMAGES]).column(IMAGES))
        return self._rows[1][info['index']].as_py()

    def prepare_data(self, idx: int):
        from mmpretrain.structures import DataSample
        info = self.get_data_info(idx)
        inputs = []
        for name, image in zip(info['candidates'], self._images(info)):
            where = f'{info["where"]}, the image of {name!r}'
            img = decode_image(self._image_bytes(info['file'], image, where), where,
                               backend='pillow')
            out = self.pipeline(dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2],
                                     sample_idx=idx))
            inputs.append(out['inputs'])
        if len({tuple(x.shape) for x in inputs}) > 1:
            raise ValueError(f'WinoGAViLDataset ({self.task}): the pipeline gives the images of '
                             f'{info["where"]} different shapes '
                             f'{sorted({tuple(x.shape) for x in inputs})}; it must resize and '
                             'crop them to one size (e.g. ResizeEdge + CenterCrop).')
        sample = DataSample()
        sample.set_field(info['cue'], 'cue')
        sample.set_field(info['candidates'], 'candidates')
        sample.set_field(info['associations'], 'associations')
        sample.set_field(idx if info['game'] is None else info['game'], 'game')
        return dict(inputs=torch.stack(inputs), data_samples=sample)
