"""Pre-tokenized visual sentences for LVM: packed token windows.

Special ids. The official BOS/EOS ids are not published; ours sit above the 8192 VQ
codes inside the released 8292-id vocabulary (8192 codes + 100 reserved ids) and are defined once,
here: :data:`LVM_BOS` = 8192, :data:`LVM_EOS` = 8193, :data:`LVM_PAD` = 8194, :data:`LVM_VOCAB` =
8292 (:data:`LVM_CODEBOOK` = 8192 codes). Every class and function takes them as arguments.

Our shard format (one directory)::

    tokens.npy    flat uint16 stream; every sentence is BOS, codes..., EOS; sentences shuffled
    offsets.npy   int64 start of every sentence in tokens.npy
    meta.json     {"codebook", "bos", "eos", "pad", "vocab_size", "tokens_per_image",
                   "tokenizer", "num_sentences", "num_tokens"}

A directory may instead hold several ``tokens_<name>.npy`` / ``offsets_<name>.npy`` pairs (read
in name order), with one ``meta.json`` counting them all. Several directories given together are
one logical stream, read in the order given; their meta must agree.

The official format (LVM's tokenize scripts): JSON lines
``{"tokens": base64(int32 little-endian ids)}``, one sentence of bare codes per line (no
BOS/EOS). :func:`encode_tokens_b64` / :func:`decode_tokens_b64` convert one line's ids,
:class:`OfficialTokenJsonlDataset` reads such files directly and :func:`convert_official_jsonl`
turns them into our shard.

Both datasets cut the stream the way EasyLM does (``EasyLM/data.py``): item ``i`` is
``stream[i * L : i * L + L + 1]`` (the model's input is the first ``L`` ids, its target the last
``L``), sentences run across windows, nothing is padded, and the tail shorter than a window is
dropped: ``len = (num_tokens - 1) // L``.
"""
import base64
import binascii
import json
import os
import os.path as osp
import re
from glob import glob
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import DATASETS
from ..utils.files import atomic_path, read_jsonl, write_json

__all__ = [
    'LVM_CODEBOOK', 'LVM_BOS', 'LVM_EOS', 'LVM_PAD', 'LVM_VOCAB', 'encode_tokens_b64',
    'decode_tokens_b64', 'read_official_jsonl', 'write_token_shard', 'convert_official_jsonl',
    'TokenStream', 'PackedTokenDataset', 'OfficialTokenJsonlDataset', 'SourceMixDataset',
    'RESERVED_SOURCE_NAMES'
]

LVM_CODEBOOK = 8192  #: VQ codes of the released tokenizer (ids 0..8191)
LVM_BOS = 8192  #: begin-of-sentence id (ours)
LVM_EOS = 8193  #: end-of-sentence id (ours)
LVM_PAD = 8194  #: padding id (ours; packed windows are never padded)
LVM_VOCAB = 8292  #: decoder vocabulary: 8192 codes + 100 reserved ids (EasyLM's llama_model.py)

_META_KEYS = ('codebook', 'bos', 'eos', 'pad', 'vocab_size', 'tokens_per_image', 'tokenizer',
              'num_sentences', 'num_tokens')
_SHARED_META = _META_KEYS[:7]  # must agree between the directories of one stream


def encode_tokens_b64(ids) -> str:
    """1-D integer ids -> base64 of their int32 little-endian bytes (the official line value)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or not (np.issubdtype(ids.dtype, np.integer) or ids.size == 0):
        raise ValueError(f'encode_tokens_b64: expected a 1-D array of integer ids, got dtype '
                         f'{ids.dtype} and shape {ids.shape}.')
    info = np.iinfo(np.int32)
    if ids.size and (ids.min() < info.min or ids.max() > info.max):
        raise ValueError(f'encode_tokens_b64: ids {ids.min()}..{ids.max()} do not fit int32.')
    return base64.b64encode(ids.astype('<i4').tobytes()).decode('ascii')


def decode_tokens_b64(text: str) -> np.ndarray:
    """Inverse of :func:`encode_tokens_b64`: base64 text -> (n,) int32 ids."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError) as err:
        raise ValueError(f'decode_tokens_b64: not base64 text ({err}).') from None
    if len(raw) % 4:
        raise ValueError(f'decode_tokens_b64: {len(raw)} bytes is not a whole number of int32 '
                         'ids (4 bytes each).')
    return np.frombuffer(raw, dtype='<i4').astype(np.int32)


def read_official_jsonl(path: str) -> Iterator[np.ndarray]:
    """Yield the (n,) int32 ids of every line ``{"tokens": base64}`` of an official JSONL file;
    a bad line is an error naming the file and line number."""
    for number, row in read_jsonl(path):
        try:
            ids = decode_tokens_b64(row['tokens'])
        except (KeyError, TypeError, ValueError) as err:
            what = 'no "tokens" field' if isinstance(err, (KeyError, TypeError)) else err
            raise ValueError(f'{path}:{number}: expected {{"tokens": base64 int32 ids}}: '
                             f'{what}.') from None
        yield ids


def _check_ids(codebook: int, bos: int, eos: int, pad: int, vocab_size: int, where: str):
    specials = dict(bos=bos, eos=eos, pad=pad)
    bad = {k: v for k, v in specials.items() if not codebook <= v < vocab_size}
    if bad or len(set(specials.values())) < 3:
        raise ValueError(f'{where}: special ids {specials} must be distinct and lie in '
                         f'[codebook={codebook}, vocab_size={vocab_size}).')
    if vocab_size > 1 << 16:
        raise ValueError(f'{where}: vocab_size {vocab_size} does not fit the uint16 stream.')


def write_token_shard(out_dir: str, sentences: Iterable, *, bos: int = LVM_BOS,
                      eos: int = LVM_EOS, pad: int = LVM_PAD, vocab_size: int = LVM_VOCAB,
                      codebook: int = LVM_CODEBOOK, tokens_per_image: int = 256,
                      tokenizer: str = 'unknown', seed: Optional[int] = 0) -> dict:
    """Write sentences of VQ codes as a shard directory (``tokens.npy``, ``offsets.npy``,
    ``meta.json``) and return its meta.

    Args:
        out_dir: The shard directory (created; must not already hold a ``meta.json``).
        sentences: 1-D integer arrays of codes in ``[0, codebook)``, one per sentence, without
            BOS/EOS: each is written as ``bos, codes..., eos``. Read once, streamed to disk.
        bos, eos, pad, vocab_size, codebook: The id layout recorded in the meta.
        tokens_per_image: Codes per image (256 for 256 px images and the f16 tokenizer).
        tokenizer: Name or checksum of the tokenizer that made the codes.
        seed: Sentences are written in a random order drawn with this seed (the terashuf step
            of the official pipeline); ``None`` keeps the given order.
    """
    _check_ids(codebook, bos, eos, pad, vocab_size, 'write_token_shard')
    if osp.exists(osp.join(out_dir, 'meta.json')):
        raise FileExistsError(f'write_token_shard: {out_dir} already holds a shard (meta.json).')
    os.makedirs(out_dir, exist_ok=True)
    raw_path = osp.join(out_dir, 'tokens.unshuffled.tmp')
    lengths = []
    try:
        with open(raw_path, 'wb') as raw:
            for i, codes in enumerate(sentences):
                codes = np.asarray(codes)
                if (codes.ndim != 1 or codes.size == 0
                        or not np.issubdtype(codes.dtype, np.integer)):
                    raise ValueError(f'write_token_shard: sentence {i} must be a non-empty 1-D '
                                     f'integer array, got dtype {codes.dtype} shape '
                                     f'{codes.shape}.')
                if codes.min() < 0 or codes.max() >= codebook:
                    raise ValueError(f'write_token_shard: sentence {i} holds ids '
                                     f'{codes.min()}..{codes.max()}, outside the codes '
                                     f'[0, {codebook}).')
                raw.write(np.concatenate([[bos], codes, [eos]]).astype('<u2').tobytes())
                lengths.append(codes.size + 2)
        if not lengths:
            raise ValueError('write_token_shard: no sentences to write.')
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = (np.arange(lengths.size) if seed is None else
                 np.random.default_rng(seed).permutation(lengths.size))
        offsets = np.concatenate([[0], np.cumsum(lengths[order])[:-1]]).astype(np.int64)
        total = int(lengths.sum())
        source = np.memmap(raw_path, dtype='<u2', mode='r', shape=(total, ))
        with atomic_path(osp.join(out_dir, 'tokens.npy'), keep_ext=True) as tokens_tmp:
            tokens = np.lib.format.open_memmap(tokens_tmp, mode='w+', dtype=np.uint16,
                                               shape=(total, ))
            for dst, src in zip(offsets, order):
                tokens[dst:dst + lengths[src]] = source[starts[src]:starts[src] + lengths[src]]
            tokens.flush()
            del tokens, source
        with atomic_path(osp.join(out_dir, 'offsets.npy'), keep_ext=True) as offsets_tmp:
            np.save(offsets_tmp, offsets)
    finally:
        if osp.exists(raw_path):
            os.remove(raw_path)
    meta = dict(codebook=codebook, bos=bos, eos=eos, pad=pad, vocab_size=vocab_size,
                tokens_per_image=tokens_per_image, tokenizer=tokenizer,
                num_sentences=int(lengths.size), num_tokens=total)
    write_json(osp.join(out_dir, 'meta.json'), meta)  # written last: marks the shard complete
    return meta


def convert_official_jsonl(ann_files: Union[str, Sequence[str]], out_dir: str, *,
                           tokens_per_image: int = 256, tokenizer: str = 'official',
                           seed: Optional[int] = 0, **ids) -> dict:
    """Official JSONL files (``{"tokens": base64 int32}`` per sentence) -> our shard in
    ``out_dir`` (BOS/EOS added per sentence, shuffled with ``seed``); returns the meta.
    ``ids``: ``bos``, ``eos``, ``pad``, ``vocab_size``, ``codebook`` of :func:`write_token_shard`.
    """
    files = [ann_files] if isinstance(ann_files, str) else list(ann_files)

    def sentences():
        for path in files:
            yield from read_official_jsonl(path)

    return write_token_shard(out_dir, sentences(), tokens_per_image=tokens_per_image,
                             tokenizer=tokenizer, seed=seed, **ids)


def _shard_files(directory: str) -> List[tuple]:
    """(tokens file, offsets file) pairs of a shard directory, in reading order."""
    single = osp.join(directory, 'tokens.npy')
    tokens = [single] if osp.isfile(single) else sorted(glob(osp.join(directory, 'tokens_*.npy')))
    if not tokens:
        raise FileNotFoundError(f'TokenStream: {directory} holds no tokens.npy and no '
                                'tokens_*.npy files.')
    pairs = []
    for path in tokens:
        offsets = osp.join(directory, re.sub(r'^tokens', 'offsets', osp.basename(path)))
        if not osp.isfile(offsets):
            raise FileNotFoundError(f'TokenStream: {path} has no {osp.basename(offsets)} '
                                    'beside it.')
        pairs.append((path, offsets))
    return pairs


def _check_npy(path: str, dtype, what: str) -> None:
    """Read the header of a ``.npy`` file of ``what`` and check it is a 1-D ``dtype`` array whose
    file size fits the header (one ``stat`` and a few hundred bytes read). ``np.load`` names no
    file for an empty, truncated or non-``.npy`` file, and memory-maps a padded one silently."""
    where = f'TokenStream: {path} ({what})'
    size = osp.getsize(path)
    if size == 0:
        raise ValueError(f'{where} is empty (0 bytes).')
    with open(path, 'rb') as f:
        try:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                    np.lib.format.read_array_header_2_0)
            shape, _, file_dtype = read(f)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f'{where} is not a .npy file ({err}).') from None
        header = f.tell()
    if file_dtype != np.dtype(dtype) or len(shape) != 1:
        raise ValueError(f'{where} must be a 1-D {np.dtype(dtype).name} array, got '
                         f'{file_dtype} of shape {shape}.')
    expected = header + shape[0] * file_dtype.itemsize
    if size != expected:
        raise ValueError(f'{where} is {size} bytes, but its header ({shape[0]} records of '
                         f'{file_dtype.itemsize} bytes after {header} header bytes) needs '
                         f'{expected}: the file is '
                         f'{"truncated" if size < expected else "longer than its header says"}. '
                         'Re-write the shard.')


class TokenStream:
    """Shard directories read as one stream of ids (memory-mapped, read-only).

    Args:
        paths: One shard directory or several (concatenated in this order).

    Raises a clear error, naming the file, for a missing file, a ``meta.json`` that is not JSON
    or lacks keys, a ``.npy`` file that is empty, not ``.npy``, of the wrong dtype, or truncated
    or padded (its size checked against its header, the tokens not read), offsets that do
    not fit their tokens or do not increase, counts that disagree with ``meta.json`` and
    directories whose meta disagree. Ids are checked against ``vocab_size`` as they are read
    (:meth:`read`; the error gives the file and the index in it): checking them at construction
    would read the whole stream.
    """

    def __init__(self, paths: Union[str, Sequence[str]]):
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        if not self.paths:
            raise ValueError('TokenStream: no shard directory given.')
        self.files, self.offset_files, sizes, counts, self.meta = [], [], [], [], None
        for directory in self.paths:
            if not osp.isdir(directory):
                raise FileNotFoundError(f'TokenStream: shard directory {directory} does not '
                                        'exist.')
            meta = self._read_meta(directory)
            n_tokens = n_sentences = 0
            for tokens_path, offsets_path in _shard_files(directory):
                tokens, offsets = self._open(tokens_path, offsets_path)
                self.files.append(tokens_path)
                self.offset_files.append(offsets_path)
                sizes.append(tokens.size)
                counts.append(offsets.size)
                n_tokens, n_sentences = n_tokens + tokens.size, n_sentences + offsets.size
            if (n_tokens, n_sentences) != (meta['num_tokens'], meta['num_sentences']):
                raise ValueError(f'TokenStream: {directory} holds {n_tokens} tokens in '
                                 f'{n_sentences} sentences, its meta.json says '
                                 f'{meta["num_tokens"]} in {meta["num_sentences"]}.')
            if self.meta is None:
                self.meta = dict(meta)
            else:
                diff = {k: (self.meta[k], meta[k]) for k in _SHARED_META
                        if self.meta[k] != meta[k]}
                if diff:
                    raise ValueError(f'TokenStream: meta.json of {directory} disagrees with '
                                     f'{self.paths[0]} on {diff} (first, this); they cannot be '
                                     'one stream.')
                self.meta['num_tokens'] += meta['num_tokens']
                self.meta['num_sentences'] += meta['num_sentences']
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.sentence_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._arrays = None  # opened lazily in each process (memmaps do not pickle cheaply)

    @staticmethod
    def _read_meta(directory: str) -> dict:
        path = osp.join(directory, 'meta.json')
        if not osp.isfile(path):
            raise FileNotFoundError(f'TokenStream: {path} is missing (a shard directory needs '
                                    'tokens.npy, offsets.npy and meta.json).')
        try:
            with open(path, 'rb') as f:
                meta = json.loads(f.read().decode('utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f'TokenStream: {path} is not a JSON object ({err}); the shard '
                             'writer may have been interrupted. Re-write the shard.') from None
        if not isinstance(meta, dict):
            raise ValueError(f'TokenStream: {path} holds a {type(meta).__name__}, expected a '
                             'JSON object.')
        missing = [k for k in _META_KEYS if k not in meta]
        if missing:
            raise ValueError(f'TokenStream: {path} lacks {missing}.')
        bad = [k for k in _META_KEYS if k != 'tokenizer' and
               (isinstance(meta[k], bool) or not isinstance(meta[k], int) or meta[k] < 0)]
        if bad:
            raise ValueError(f'TokenStream: {path}: {", ".join(f"{k}={meta[k]!r}" for k in bad)} '
                             'must be integers >= 0.')
        _check_ids(meta['codebook'], meta['bos'], meta['eos'], meta['pad'], meta['vocab_size'],
                   f'TokenStream: {path}')
        return meta

    @staticmethod
    def _open(tokens_path: str, offsets_path: str):
        _check_npy(tokens_path, np.uint16, 'token ids')
        _check_npy(offsets_path, np.int64, 'sentence offsets')
        tokens = np.load(tokens_path, mmap_mode='r')
        offsets = np.load(offsets_path, mmap_mode='r')
        if tokens.size == 0 or offsets.size == 0 or offsets[0] != 0 or \
                offsets[-1] >= tokens.size:
            raise ValueError(f'TokenStream: {offsets_path} ({offsets.size} offsets) does not '
                             f'describe the {tokens.size} tokens of {tokens_path}: expected '
                             'sentence starts from 0 to below the token count.')
        steps = np.diff(offsets)
        if steps.size and steps.min() <= 0:
            at = int(np.argmax(steps <= 0)) + 1
            raise ValueError(f'TokenStream: {offsets_path}: offset {at} ({int(offsets[at])}) is '
                             f'not after offset {at - 1} ({int(offsets[at - 1])}); sentence '
                             'starts must increase.')
        return tokens, offsets

    def __getstate__(self):
        return {**self.__dict__, '_arrays': None}

    def _tokens(self, piece: int) -> np.ndarray:
        if self._arrays is None:
            self._arrays = [np.load(path, mmap_mode='r') for path in self.files]
        return self._arrays[piece]

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def num_sentences(self) -> int:
        return int(self.sentence_starts[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Ids ``[start, stop)`` of the whole stream as int64 (across files)."""
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f'TokenStream: range [{start}, {stop}) outside the {len(self)} '
                             'tokens.')
        parts = []
        piece = int(np.searchsorted(self.starts, start, side='right')) - 1
        pos = start
        while pos < stop:
            lo = pos - self.starts[piece]
            hi = min(stop, self.starts[piece + 1]) - self.starts[piece]
            parts.append(self._tokens(piece)[lo:hi])
            pos = self.starts[piece] + hi
            piece += 1
        ids = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
        if ids.size and ids.max() >= self.meta['vocab_size']:
            first = int(np.argmax(ids >= self.meta['vocab_size']))
            at = start + first
            piece = int(np.searchsorted(self.starts, at, side='right')) - 1
            raise ValueError(f'TokenStream: id {int(ids[first])} at stream position {at} '
                             f'({self.files[piece]}, index {at - int(self.starts[piece])}) is >= '
                             f'vocab_size {self.meta["vocab_size"]} of meta.json.')
        return ids

    def sentence(self, index: int) -> np.ndarray:
        """Ids of sentence ``index`` (as written: ``bos, codes..., eos``) as int64."""
        if not 0 <= index < self.num_sentences:
            raise IndexError(f'TokenStream: sentence {index} of {self.num_sentences}.')
        piece = int(np.searchsorted(self.sentence_starts, index, side='right')) - 1
        offsets = np.load(self.offset_files[piece], mmap_mode='r')
        local = index - self.sentence_starts[piece]
        end = offsets[local + 1] if local + 1 < offsets.size else self.starts[piece + 1] - \
            self.starts[piece]
        return self.read(int(self.starts[piece] + offsets[local]),
                         int(self.starts[piece] + end))


class _TokenWindows(Dataset):
    """Windows of ``context_length + 1`` ids cut from a stream (EasyLM's packing)."""

    def __init__(self, context_length: int, num_tokens: int, where: str):
        if context_length < 1:
            raise ValueError(f'{where}: context_length must be >= 1, got {context_length}.')
        self.context_length = context_length
        self._len = (num_tokens - 1) // context_length
        if self._len < 1:
            raise ValueError(f'{where}: the stream has {num_tokens} tokens, fewer than one window '
                             f'of context_length + 1 = {context_length + 1}.')

    def _read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        """``dict(inputs=LongTensor (L + 1,))``: the model reads ``[:-1]`` and predicts
        ``[1:]``."""
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f'{type(self).__name__}: index {index} of {self._len} windows.')
        start = index * self.context_length
        return dict(inputs=torch.from_numpy(self._read(start, start + self.context_length + 1)))

    def full_init(self):
        """Nothing to do (mmengine's Runner calls it on every dataset it builds)."""


def _check_meta_ids(meta: dict, expected: dict, where: str):
    diff = {k: (v, meta[k]) for k, v in expected.items() if meta[k] != v}
    if diff:
        raise ValueError(f'{where}: the stream was written with other ids than the dataset '
                         f'expects: {diff} (expected, meta.json). Set the dataset\'s ids (and the '
                         'model\'s) to the stream\'s, or re-tokenize.')


@DATASETS.register_module()
class PackedTokenDataset(_TokenWindows):
    """Token windows of our shard directories, memory-mapped.

    Args:
        data_root: A shard directory or a list of them (one stream, in order).
        context_length: ``L``; items are ``dict(inputs=LongTensor (L + 1,))``.
        bos_id, eos_id, vocab_size: The ids the model expects; a stream written with others is
            refused.

    ``len = (num_tokens - 1) // L``; ``metainfo`` is the stream's meta (saved in checkpoints by
    mmengine's Runner). A torch ``Dataset`` (random access, ``len``), which is all
    ``DefaultSampler`` and the Runner need; no per-window list is ever built.
    """

    def __init__(self, data_root: Union[str, Sequence[str]], context_length: int = 4096,
                 bos_id: int = LVM_BOS, eos_id: int = LVM_EOS, vocab_size: int = LVM_VOCAB):
        self.stream = TokenStream(data_root)
        _check_meta_ids(self.stream.meta, dict(bos=bos_id, eos=eos_id, vocab_size=vocab_size),
                        f'PackedTokenDataset({data_root!r})')
        super().__init__(context_length, len(self.stream), f'PackedTokenDataset({data_root!r})')

    @property
    def metainfo(self) -> dict:
        return dict(self.stream.meta)

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self.stream.read(start, stop)


@DATASETS.register_module()
class OfficialTokenJsonlDataset(_TokenWindows):
    """Token windows of official JSONL files (``{"tokens": base64 int32}`` per line), held in
    memory; for large corpora convert them once with :func:`convert_official_jsonl`.

    Args:
        ann_file: A JSONL file or a list of them (concatenated in order, lines kept in order:
            the official files are shuffled beforehand).
        context_length: ``L``; items are ``dict(inputs=LongTensor (L + 1,))``.
        add_bos_eos: Wrap every line's ids in ``bos_id ... eos_id`` (our training layout);
            ``False`` packs the bare codes.
        bos_id, eos_id, vocab_size: The special ids and the vocabulary; every id read must be
            below ``vocab_size``.
    """

    def __init__(self, ann_file: Union[str, Sequence[str]], context_length: int = 4096,
                 add_bos_eos: bool = True, bos_id: int = LVM_BOS, eos_id: int = LVM_EOS,
                 vocab_size: int = LVM_VOCAB):
        files = [ann_file] if isinstance(ann_file, str) else list(ann_file)
        parts = []
        for path in files:
            if not osp.isfile(path):
                raise FileNotFoundError(f'OfficialTokenJsonlDataset: {path} does not exist.')
            for number, ids in enumerate(read_official_jsonl(path), 1):
                if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
                    raise ValueError(f'OfficialTokenJsonlDataset: {path}, sentence {number}: '
                                     f'ids {ids.min()}..{ids.max()} outside [0, vocab_size='
                                     f'{vocab_size}).')
                parts.append(np.concatenate([[bos_id], ids, [eos_id]]) if add_bos_eos else ids)
        if not parts:
            raise ValueError(f'OfficialTokenJsonlDataset: {files} hold no sentences.')
        self.tokens = np.concatenate(parts).astype(np.int64)
        self.bos_id, self.eos_id, self.vocab_size = bos_id, eos_id, vocab_size
        self.num_sentences = len(parts)
        super().__init__(context_length, self.tokens.size, f'OfficialTokenJsonlDataset({files})')

    @property
    def metainfo(self) -> dict:
        return dict(bos=self.bos_id, eos=self.eos_id, vocab_size=self.vocab_size,
                    num_sentences=self.num_sentences, num_tokens=int(self.tokens.size))

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self.tokens[start:stop].copy()


#: names a source cannot take: the overall keys of the ``Perplexity`` metric
RESERVED_SOURCE_NAMES = ('mean', 'token', 'nll', 'type')


def check_source_name(name, where: str) -> str:
    """A source name becomes the metric key ``ppl/<name>``: a non-empty string without ``/``
    that is not one of the overall keys."""
    if not isinstance(name, str) or not name or '/' in name or name in RESERVED_SOURCE_NAMES:
        raise ValueError(f'{where}: a source name must be a non-empty string without "/" and '
                         f'not one of {RESERVED_SOURCE_NAMES} (it becomes the key ppl/<name>); '
                         f'got {name!r}.')
    return name


@DATASETS.register_module()
class SourceMixDataset(Dataset):
    """One evaluation set made of several named sources, each item tagged with its source.

    The datasets may be of different kinds (token windows of :class:`PackedTokenDataset` /
    :class:`OfficialTokenJsonlDataset`, image sentences of ``VisualSentenceDataset``); items keep
    their order, source after source. Every item's ``data_samples`` metainfo gets ``source`` (the
    name) and ``sample_idx`` (its index here); an item without data sample (a token window) gets
    one. ``Perplexity`` then reports ``ppl/<source>`` beside the overall numbers, and
    ``ppl/type/<sentence_type>`` for the visual sentences, whose metainfo carries their type.
    mmengine's ``ConcatDataset`` takes ``BaseDataset`` instances only, and token windows are
    plain torch datasets (no per-window list is ever built), hence this wrapper.

    Token windows and image sentences have different shapes: batch them with
    ``collate_fn=dict(type='pseudo_collate')`` (``LVM`` tokenizes the images and pads).

    Args:
        datasets: ``{source name: dataset or its config}``, in order.
    """

    def __init__(self, datasets: Dict[str, Union[dict, Dataset]]):
        from mmengine.dataset import BaseDataset
        from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS  # no default scope needed
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError(f'SourceMixDataset: datasets must be a non-empty dict '
                             f'{{source name: dataset config}}, got {datasets!r}.')
        self.sources, self.datasets = [], []
        for name, dataset in datasets.items():
            self.sources.append(check_source_name(name, 'SourceMixDataset'))
            if isinstance(dataset, dict):
                dataset = MMPRETRAIN_DATASETS.build(dataset)
            if isinstance(dataset, BaseDataset):
                dataset.full_init()
            if len(dataset) == 0:
                raise ValueError(f'SourceMixDataset: source {name!r} has no items.')
            self.datasets.append(dataset)
        self.starts = np.cumsum([0] + [len(d) for d in self.datasets]).tolist()

    @property
    def metainfo(self) -> dict:
        return dict(sources=list(self.sources),
                    source_sizes={n: len(d) for n, d in zip(self.sources, self.datasets)})

    def full_init(self):
        """Nothing to do: the datasets are built and initialised in ``__init__``."""

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, index: int) -> dict:
        from mmengine.structures import BaseDataElement
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f'SourceMixDataset: index {index} of {len(self)} items.')
        k = int(np.searchsorted(self.starts, index, side='right')) - 1
        item = dict(self.datasets[k][index - self.starts[k]])
        sample = item.get('data_samples')
        if sample is None:
            sample = item['data_samples'] = BaseDataElement()
        sample.set_metainfo(dict(source=self.sources[k], sample_idx=index))
        return item
