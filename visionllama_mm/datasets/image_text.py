"""Image-text pairs for contrastive training, from an annotation file or from webdataset shards.

* :class:`ImageTextDataset`: an mmengine ``BaseDataset`` over a JSON-lines or CSV/TSV annotation
  file (one image path and one caption per sample; COCO/Flickr-style data, small corpora).
* :class:`WebDatasetImageText`: a streamed ``IterableDataset`` over tar shards in the webdataset
  layout that DataComp and LAION use (``<key>.jpg`` / ``.png`` / ``.webp`` beside ``<key>.txt``,
  members of one sample adjacent). Shards are split between ranks and data-loader workers (each
  reads whole shards, none twice), shuffled per pass, and samples pass a shuffle buffer. Brace
  patterns are expanded by ``braceexpand``, members grouped into samples and shuffled by
  ``webdataset``; the Runner-facing parts (rank split, seeds, mmpretrain transforms, errors naming
  the shard and member) are ours. Nothing in a shard is executed: images are decoded by mmcv,
  captions read as UTF-8 text, other members ignored.
* :class:`TokenizeText`: a transform turning ``results['text']`` into ``text_tokens`` with the
  CLIP BPE, in the data-loader workers.
"""
import csv
import os.path as osp
import random
import tarfile
import zlib
from glob import glob
from typing import Dict, Iterator, List, Optional, Sequence, Union

from braceexpand import braceexpand
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset, Compose
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.filters import shuffle as shuffle_buffered
from webdataset.tariterators import base_plus_ext, group_by_keys

from ..registry import DATASETS, TRANSFORMS
from ..utils.files import read_jsonl
from .transforms import decode_image, use_checked_image_loading

__all__ = ['ImageTextDataset', 'WebDatasetImageText', 'TokenizeText', 'expand_shards']


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """``results['text']`` -> ``results['text_tokens']``: (context_length, ) int64 CLIP BPE ids.

    A list of captions (COCO has five per image) gives one chosen at random. Pack the result
    with ``PackInputs(algorithm_keys=['text_tokens'])``.
    """

    def __init__(self, context_length: int = 77):
        self.context_length = context_length
        self._tokenizer = None

    def transform(self, results: dict) -> dict:
        if self._tokenizer is None:
            from ..models.multimodal.clip import CLIPTokenizer
            self._tokenizer = CLIPTokenizer(self.context_length)
        text = results.get('text')
        if isinstance(text, (list, tuple)):
            text = random.choice(text) if text else None
        if not isinstance(text, str):
            raise ValueError(f'TokenizeText: sample {results.get("sample_idx", "?")} has no '
                             f'caption (results["text"] = {text!r}).')
        results['text_tokens'] = self._tokenizer(text)[0].numpy()
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(context_length={self.context_length})'


@DATASETS.register_module()
class ImageTextDataset(BaseDataset):
    """Image-caption pairs listed in an annotation file.

    Formats (by extension): ``.jsonl`` (one JSON object per line) or ``.csv`` / ``.tsv`` (a
    header row naming the columns). Each sample gives ``image_key`` (a path relative to
    ``data_prefix['img_path']``) and ``text_key`` (a caption, or a list of captions).

    Args:
        ann_file: The annotation file (relative to ``data_root``).
        image_key: Column / field of the image path (OpenCLIP's CSV uses ``'filepath'``).
        text_key: Column / field of the caption (OpenCLIP's CSV uses ``'title'``).
        **kwargs: ``BaseDataset``'s (``data_root``, ``data_prefix``, ``pipeline`` ...).
    """

    def __init__(self, ann_file: str, image_key: str = 'image', text_key: str = 'caption',
                 data_prefix: Union[str, dict] = '', **kwargs):
        self.image_key, self.text_key = image_key, text_key
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        kwargs['pipeline'] = build_pipeline(kwargs.get('pipeline', ())).transforms
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def _rows(self) -> Iterator[tuple]:
        path = self.ann_file
        ext = osp.splitext(path)[1].lower()
        if ext == '.jsonl':
            yield from read_jsonl(path)
        elif ext in ('.csv', '.tsv'):
            with open(path, encoding='utf-8', newline='') as f:
                reader = csv.DictReader(f, delimiter='\t' if ext == '.tsv' else ',')
                try:
                    for row in reader:
                        yield reader.line_num, row
                except (UnicodeDecodeError, csv.Error) as err:
                    raise ValueError(f'{path}: after line {reader.line_num}: not readable as '
                                     f'UTF-8 {ext[1:]} ({err}).') from None
        else:
            raise ValueError(f'ImageTextDataset: annotation file {path} must be .jsonl, .csv or '
                             '.tsv.')

    def load_data_list(self) -> List[dict]:
        data_list = []
        prefix = self.data_prefix.get('img_path', '')
        for number, row in self._rows():
            missing = [k for k in (self.image_key, self.text_key)
                       if not isinstance(row, dict) or row.get(k) in (None, '')]
            if missing:
                raise ValueError(f'{self.ann_file}:{number}: no {" / ".join(missing)} (the '
                                 f'dataset reads image_key={self.image_key!r}, '
                                 f'text_key={self.text_key!r}); the line has '
                                 f'{sorted(row) if isinstance(row, dict) else row!r}.')
            data_list.append(dict(img_path=osp.join(prefix, row[self.image_key]),
                                  text=row[self.text_key]))
        if not data_list:
            raise ValueError(f'ImageTextDataset: annotation file {self.ann_file} has no samples.')
        return data_list


def build_pipeline(pipeline: Sequence) -> Compose:
    """Transforms built from mmpretrain's registry (which also finds mmcv's and the package's),
    whatever the default scope, so the datasets work inside and outside a Runner.
    ``LoadImageFromFile`` is built as :class:`~.transforms.CheckedLoadImageFromFile` (same
    arguments and pixels; a bad image is named with its sample index), with any tool."""
    pipeline = use_checked_image_loading(list(pipeline))
    return Compose([MMPRETRAIN_TRANSFORMS.build(t) if isinstance(t, dict) else t
                    for t in pipeline])


#: Magic bytes of the compressed shards ``tarfile`` reads (gzip, bzip2, xz).
_COMPRESSED = (b'\x1f\x8b', b'BZh', b'\xfd7zXZ')


def expand_shards(pattern: str) -> List[str]:
    """``'train-{00000..00003}.tar'`` -> four names (zero padding kept), ``'{a,b}.tar'`` -> two
    (``braceexpand``, left to right as a shell); a name with ``*``, ``?`` or ``[`` is then
    globbed (sorted)."""
    return [name for p in braceexpand(pattern)
            for name in (sorted(glob(p)) if any(c in p for c in '*?[') else [p])]


@DATASETS.register_module()
class WebDatasetImageText(IterableDataset):
    """Streamed image-caption pairs from webdataset tar shards (DataComp / LAION layout).

    Args:
        shards: Shard path pattern(s) (see :func:`expand_shards`), relative to ``data_root``.
        pipeline: mmpretrain transforms applied to ``dict(img, img_shape, ori_shape, text,
            img_path, sample_idx)`` (the image decoded as BGR, as ``LoadImageFromFile`` gives it).
        data_root: Prefix of relative shard paths.
        image_exts: Member extensions read as the image, first found wins.
        text_ext: Member extension read as the caption.
        shuffle: Shuffle the shard order each pass and samples through a buffer.
        shuffle_buffer: Samples held for shuffling (per reader).
        seed: Base seed of the shard order (the same on every rank, so the split is exact).
        num_samples: Samples in all shards (DataComp / LAION publish it). ``len()`` of the
            dataset is this rank's share; mmengine asks for it to build schedulers. ``None``:
            counted once from the tar headers (fine for small corpora; give it for large ones).

    Each pass, the (shuffled) shard list is split between ``world_size x num_workers`` readers,
    reader ``rank * num_workers + worker`` taking every such-th shard; there must be at least as
    many shards as readers. With ``persistent_workers=True`` each pass gets a new shard order.
    A sample missing its image or caption is skipped and counted in a warning per shard. Errors
    name the shard, and the member with its index in the shard where there is one: at
    construction, a missing or empty shard and an uncompressed ``.tar`` cut off mid-block; when
    read, a file that is not a tar, a tar cut off or garbled after some member, an empty tar, a
    shard without a single complete sample, an image that is empty, truncated or does not decode
    and a caption that is not UTF-8.
    """

    def __init__(self, shards: Union[str, Sequence[str]], pipeline: Sequence = (),
                 data_root: str = '', image_exts: Sequence[str] = ('jpg', 'jpeg', 'png', 'webp'),
                 text_ext: str = 'txt', shuffle: bool = True, shuffle_buffer: int = 1000,
                 seed: int = 0, num_samples: Optional[int] = None):
        patterns = [shards] if isinstance(shards, str) else list(shards)
        self.shards = [name for p in patterns
                       for name in expand_shards(osp.join(data_root, p) if data_root else p)]
        missing = [s for s in self.shards if not osp.isfile(s)]
        if not self.shards or missing:
            raise FileNotFoundError(
                f'WebDatasetImageText: {len(missing)} of {len(self.shards)} shards do not exist '
                f'(first: {missing[:3] or patterns}); shards={shards!r}, data_root={data_root!r}.')
        self._check_sizes()
        self.pipeline = build_pipeline(pipeline)
        self.image_exts = tuple(e.lower() for e in image_exts)
        self.text_ext = text_ext.lower()
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.epoch = 0
        self.num_samples = num_samples
        self.metainfo: Dict = {}

    def __len__(self) -> int:
        if self.num_samples is None:
            self.num_samples = sum(self._count(s) for s in self.shards)
        return self.num_samples // get_dist_info()[1]

    def _check_sizes(self) -> None:
        """One ``os.stat`` per shard: an empty file, or an uncompressed ``.tar`` whose size is
        not a whole number of 512-byte tar blocks (cut off while copying), is refused here."""
        bad = []
        for shard in self.shards:
            size = osp.getsize(shard)
            if size == 0:
                bad.append(f'{shard} is empty (0 bytes)')
            elif shard.endswith('.tar') and size % 512:
                bad.append(f'{shard} is truncated ({size} bytes, not a whole number of 512-byte '
                           'tar blocks)')
        if bad:
            more = f'; ... {len(bad) - 3} more' if len(bad) > 3 else ''
            raise ValueError(f'WebDatasetImageText: {len(bad)} of {len(self.shards)} shards are '
                             f'not whole tar files: {"; ".join(bad[:3])}{more}. Re-create or '
                             'remove them.')

    def _count(self, shard: str) -> int:
        """Captions in a shard, from its member headers."""
        try:
            with tarfile.open(shard, mode='r:*') as tar:
                return sum(1 for m in tar.getmembers()
                           if m.isfile() and m.name.lower().endswith('.' + self.text_ext))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise ValueError(f'WebDatasetImageText: shard {shard} is not a readable tar while '
                             f'counting its samples ({type(err).__name__}: {err}). Re-create '
                             'or remove the shard, or give num_samples.') from None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({len(self.shards)} shards, first {self.shards[0]}, '
                f'shuffle={self.shuffle})')

    def _my_shards(self) -> List[str]:
        rank, world = get_dist_info()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        readers = world * workers
        if len(self.shards) < readers:
            raise RuntimeError(
                f'WebDatasetImageText: {len(self.shards)} shards for {readers} readers '
                f'({world} ranks x {workers} workers): every reader needs at least one shard. '
                'Use more shards or fewer data-loader workers.')
        # Ours, not webdataset's split_by_node / split_by_worker: those interleave readers as
        # rank + world * worker and leave a reader without shards silently empty.
        order = list(self.shards)
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        return order[rank * workers + worker::readers]

    def _members(self, shard: str, where: dict) -> Iterator[dict]:
        """The shard's regular files in order, as webdataset's file records (``fname``, ``data``:
        ``(bytes, member name, member index)``). Read with the standard library's ``tarfile`` in
        streaming mode rather than webdataset's tar iterator: that one drops the member index and
        the end offset the errors report, and stops quietly at a cut-off or garbled header.
        ``where`` follows the reader (last member, its index, the sample index) for errors."""
        wanted = set(self.image_exts) | {self.text_ext}
        key = None
        with open(shard, 'rb') as f:
            try:
                with tarfile.open(fileobj=f, mode='r|*') as tar:
                    for number, member in enumerate(tar):
                        where.update(name=member.name, number=number)
                        if not member.isfile():
                            continue
                        this_key, ext = base_plus_ext(member.name)
                        if this_key is None:
                            continue
                        if this_key != key:
                            key = this_key
                            where['index'] += 1
                        data = (tar.extractfile(member).read() if ext.lower() in wanted
                                else b'')  # other members are named for the grouping only
                        yield dict(fname=member.name, data=(data, member.name, number),
                                   __url__=shard)
                    end = tar.offset
            except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
                name, number, index = where['name'], where['number'], where['index']
                after = (f'reading member {name} or the header after it (member {number} of the '
                         f'shard, sample {index})'
                         if name is not None else 'at its first member')
                raise ValueError(f'WebDatasetImageText: shard {shard} is not a readable tar '
                                 f'(failed {after}: {type(err).__name__}: {err}). Re-create '
                                 'or remove the shard.') from None
            self._check_end(f, shard, end, where['name'], where['number'], where['index'])

    def _samples(self, shard: str) -> Iterator[dict]:
        """Samples of one shard, in order (members grouped by key with webdataset's
        ``group_by_keys``). Errors name the shard, the member, its index among the shard's
        members and the index of the sample in the shard."""
        skipped, first_skipped, yielded = 0, None, 0
        where = dict(name=None, number=-1, index=-1)
        groups = group_by_keys(self._members(shard, where),
                               suffixes=set(self.image_exts) | {self.text_ext})
        for index, group in enumerate(_named_errors(groups, shard)):
            key = group['__key__']
            image = next((group[e] for e in self.image_exts if e in group), None)
            text = group.get(self.text_ext)
            if image is None or text is None:
                skipped += 1
                first_skipped = first_skipped or key
                continue
            (data, member, number), (caption, text_member, text_number) = image, text
            img = decode_image(data, f'WebDatasetImageText: {shard}: member {member}',
                               f'member {number} of the shard, sample {index}')
            try:
                caption = caption.decode('utf-8').strip()
            except UnicodeDecodeError as err:
                raise ValueError(f'WebDatasetImageText: {shard}: member {text_member} is not '
                                 f'UTF-8 text ({err}; member {text_number} of the shard, sample '
                                 f'{index}).') from None
            yielded += 1
            yield dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], text=caption,
                       img_path=f'{shard}/{member}', sample_idx=f'{osp.basename(shard)}/{key}')
        number = where['number']
        if number < 0:
            raise ValueError(f'WebDatasetImageText: shard {shard} is an empty tar (no members). '
                             'Re-create or remove the shard.')
        if not yielded:
            raise ValueError(f'WebDatasetImageText: shard {shard} has {number + 1} members but '
                             f'no sample with both an image ({"/".join(self.image_exts)}) and a '
                             f'caption (.{self.text_ext}); first key: {first_skipped}. Check '
                             'image_exts / text_ext, or re-create the shard.')
        if skipped:
            MMLogger.get_current_instance().warning(
                f'WebDatasetImageText: {shard}: skipped {skipped} samples without an image '
                f'({"/".join(self.image_exts)}) or a caption (.{self.text_ext}); first: '
                f'{first_skipped}.')

    @staticmethod
    def _check_end(f, shard: str, end: int, name, number: int, index: int) -> None:
        """An uncompressed tar ends with zero blocks after its last member; ``tarfile`` in
        streaming mode stops quietly at a cut-off or garbled header, so look at what is left."""
        f.seek(0)
        if f.read(6).startswith(_COMPRESSED):
            return  # a cut-off compressed stream is an error of the decompressor
        f.seek(end)
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            if chunk.strip(b'\x00'):
                raise ValueError(f'WebDatasetImageText: shard {shard} has data the tar reader '
                                 f'cannot parse at byte {end} (after member {name}, member '
                                 f'{number} of the shard, sample {index}): a corrupt header. '
                                 'Re-create the shard.')
        size = f.tell()
        if size - end < 1024:
            raise ValueError(f'WebDatasetImageText: shard {shard} is truncated: it stops at byte '
                             f'{size} after member {name} (member {number} of the shard, sample '
                             f'{index}) without the end-of-archive blocks. Re-create the shard.')

    def __iter__(self) -> Iterator[dict]:
        shards = self._my_shards()
        info = get_worker_info()
        rng = random.Random((self.seed + self.epoch) * 1_000_003 + (info.seed if info else 0))
        self.epoch += 1
        if self.shuffle:
            rng.shuffle(shards)
        samples = (out for shard in shards for sample in self._samples(shard)
                   for out in [self.pipeline(sample)] if out is not None)
        if self.shuffle and self.shuffle_buffer > 1:
            samples = shuffle_buffered(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(samples)
        yield from samples


def _named_errors(groups: Iterator[dict], shard: str) -> Iterator[dict]:
    """webdataset's grouping refuses a key with two members of one extension; name the shard."""
    try:
        yield from groups
    except ValueError as err:
        if 'duplicate file name' not in str(err.args[0]):
            raise
        raise ValueError(f'WebDatasetImageText: shard {shard}: {err.args[0]}. Re-create the '
                         'shard with one member per extension and key.') from None
