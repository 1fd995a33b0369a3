"""tools/lvm/tokenize_sentences.py: visual sentences -> token shard with a tiny random VQGAN.

The shard holds exactly the tokenizer's codes of every sentence (BOS/EOS around them, shuffled
with the seed); a run stopped after one chunk and resumed (a stray temporary part from a crash
beside it) gives the same files as an uninterrupted run."""
import importlib.util
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import (LVM_BOS, LVM_EOS, PackedTokenDataset, TokenStream,
                                     VisualSentenceDataset)
from visionllama_mm.datasets.checks import weights_checksum
from ..conftest import REPO, run_tool

TOOL = osp.join(REPO, 'tools', 'lvm', 'tokenize_sentences.py')
ARCH = dict(hidden_channels=32, channel_mult=(1, 1, 2), resolution=32, z_channels=16,
            quantized_embed_dim=16, num_embeddings=256, num_res_blocks=1)


def load_tool():
    spec = importlib.util.spec_from_file_location('tokenize_sentences', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Seven sentences of 48x64 photo crops (every type the pipeline changes), a tokenizer
    config and an LVM-style checkpoint of its weights."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    from sklearn.datasets import load_sample_images
    root = tmp_path_factory.mktemp('tok')
    photos = load_sample_images().images
    names = []
    for k in range(8):
        names.append(f'img/{k}.png')
        (root / 'img').mkdir(exist_ok=True)
        crop = photos[k % 2][30 * k:30 * k + 48, 50 * k:50 * k + 64]
        Image.fromarray(crop).save(root / names[-1])
    lines = [dict(images=names[:3], type='sequence'), dict(images=names[3:5], type='colorization'),
             dict(images=names[5:8], type='inpainting'), dict(images=names[1:2], type='single'),
             {'input': names[:2], 'target': names[2:3]}, dict(images=names[::2], type='pair'),
             dict(images=names[6:], type='inpainting')]
    import json
    (root / 'ann.jsonl').write_text(''.join(json.dumps(line) + '\n' for line in lines))
    (root / 'tok.py').write_text(f"custom_imports = dict(imports=['visionllama_mm'])\n"
                                 f"model = dict(type='VQGANTokenizer', arch={ARCH!r})\n")
    init_default_scope('mmpretrain')
    torch.manual_seed(123)
    tokenizer = MODELS.build(dict(type='VQGANTokenizer', arch=ARCH)).eval()
    torch.save(dict(state_dict={f'tokenizer.{k}': v for k, v in
                                tokenizer.state_dict().items()}), root / 'lvm.pth')
    return root, tokenizer


def test_tokenize_matches_the_tokenizer_and_resumes(data, tmp_path):
    root, tokenizer = data

    def argv(out, *extra, chunk_size=2):
        return [str(root / 'ann.jsonl'), str(out), '--tokenizer', str(root / 'tok.py'),
                '--checkpoint', str(root / 'lvm.pth'), '--data-root', str(root), '--image-size',
                '32', '--batch-size', '3', '--chunk-size', str(chunk_size), '--seed', '5',
                '--device', 'cpu', *extra]

    env = None
    # interrupted after one chunk, a crashed part write left behind, then resumed
    out = tmp_path / 'resumed'
    log = run_tool([sys.executable, TOOL] + argv(out, '--max-chunks', '1'), env=env,
                   fresh=True)  # a new interpreter, as from a shell
    assert 'stopped after 1 chunk(s)' in log and not (out / 'meta.json').exists()
    assert sorted(p.name for p in (out / 'parts').iterdir()) == ['part_000000.npz',
                                                                 'progress.json']
    (out / 'parts' / 'part_000001.tmp.npz').write_bytes(b'half a file')
    log = run_tool([sys.executable, TOOL] + argv(out), env=env)
    assert '4 chunks: 1 done before, 3 to encode' in log
    assert not (out / 'parts').exists()

    tool = load_tool()
    tool.main(argv(tmp_path / 'whole'))
    for name in ('tokens.npy', 'offsets.npy', 'meta.json'):
        assert (out / name).read_bytes() == (tmp_path / 'whole' / name).read_bytes()

    # the shard holds the tokenizer's codes of every pipeline output, BOS/EOS around them
    stream = TokenStream(str(out))
    ds = VisualSentenceDataset(str(root / 'ann.jsonl'), data_root=str(root), image_size=32,
                               seed=5)
    with torch.no_grad():
        expected = [tokenizer.encode(ds[i]['inputs']).reshape(-1).numpy() for i in range(7)]
    order = np.random.default_rng(5).permutation(7)
    for j, i in enumerate(order):
        written = stream.sentence(j)
        assert written[0] == LVM_BOS and written[-1] == LVM_EOS
        assert np.array_equal(written[1:-1], expected[i])
    meta = stream.meta
    assert meta['tokens_per_image'] == 64 and meta['codebook'] == 256
    assert meta['num_sentences'] == 7 and meta['num_tokens'] == sum(e.size + 2 for e in expected)
    assert meta['tokenizer'] == f'{type(tokenizer).__name__}:sha256:' \
        f'{weights_checksum(tokenizer)}'
    assert [e.size // 64 for e in expected] == [3, 4, 6, 1, 3, 4, 4]
    packed = PackedTokenDataset(str(out), context_length=64)
    assert len(packed) == (meta['num_tokens'] - 1) // 64

    # the lead's LVM trains on the windows, and on the image sentences with the same tokenizer
    from mmengine.dataset import default_collate, pseudo_collate

    from visionllama_mm.models.lvm import LVM
    torch.manual_seed(0)
    model = LVM(backbone=dict(type='LLaMADecoder', arch=dict(embed_dims=32, hidden_dims=64,
                                                             num_layers=1, num_heads=2)),
                tokenizer=dict(type='VQGANTokenizer', arch=ARCH), num_codes=256)
    model.tokenizer.load_state_dict(tokenizer.state_dict())
    for batch in (default_collate([packed[0], packed[1]]), pseudo_collate([ds[0], ds[3]])):
        loss = model(**model.data_preprocessor(batch), mode='loss')['loss']
        assert abs(loss.item() - np.log(8292)) < 1.0
    assert np.array_equal(model.tokenize(ds[0]['inputs'][None])[0].numpy(), expected[0])

    # a finished shard is left alone; changed settings refuse to mix parts
    tool.main(argv(out))
    tool.main(argv(tmp_path / 'part', '--max-chunks', '1'))
    with pytest.raises(SystemExit, match=r"part was tokenized for other inputs: chunk_size: 2 "
                                         r"\(then\) -> 3 \(now\)\. Refusing"):
        tool.main(argv(tmp_path / 'part', chunk_size=3))


def test_tokenizer_lookup_and_bad_checkpoint(data, tmp_path):
    from mmengine.config import Config
    root, tokenizer = data
    tool = load_tool()
    for text in ("tokenizer = dict(type='VQGANTokenizer', arch={})\n",
                 "model = dict(type='LVM', tokenizer=dict(type='VQGANTokenizer', arch={}))\n",
                 "model = dict(type='VQGANTokenizer', arch={})\n"):
        (tmp_path / 'c.py').write_text(text)
        assert tool.tokenizer_config(Config.fromfile(tmp_path / 'c.py'))['type'] == \
            'VQGANTokenizer'
    (tmp_path / 'c.py').write_text("model = dict(type='LVM')\n")
    with pytest.raises(SystemExit, match='no tokenizer found'):
        tool.tokenizer_config(Config.fromfile(tmp_path / 'c.py'))
    torch.save({'encoder.weight': torch.zeros(1)}, tmp_path / 'bad.pth')
    with pytest.raises(SystemExit, match=r"does not match the tokenizer .*missing \(133\): .*; "
                                         r"unexpected \(1\): \['encoder.weight'\]"):
        tool.build_tokenizer(str(root / 'tok.py'), str(tmp_path / 'bad.pth'), 0, 'cpu')
    with pytest.raises(SystemExit, match='not a multiple of the tokenizer'):
        tool.main([str(root / 'ann.jsonl'), str(tmp_path / 'o'), '--tokenizer',
                   str(root / 'tok.py'), '--image-size', '30', '--device', 'cpu'])


def test_other_inputs_are_refused_and_overwrite_starts_over(data, tmp_path, capsys):
    """Parts or a finished shard of other sentences / another seed are never merged or called
    "nothing to do"; --overwrite starts over; folders of other tools are left alone."""
    root, _ = data
    tool = load_tool()
    ann = root / 'ann.jsonl'
    (tmp_path / 'few.jsonl').write_text(''.join(ann.read_text().splitlines(True)[:3]))

    def argv(ann_file, out, *extra):
        return [str(ann_file), str(out), '--tokenizer', str(root / 'tok.py'), '--checkpoint',
                str(root / 'lvm.pth'), '--data-root', str(root), '--image-size', '32',
                '--chunk-size', '2', '--device', 'cpu', *extra]

    out, few = tmp_path / 'out', tmp_path / 'few.jsonl'
    tool.main(argv(few, out, '--max-chunks', '1'))  # parts of 3 sentences
    with pytest.raises(SystemExit) as err:
        tool.main(argv(ann, out))
    msg = str(err.value)
    assert msg.startswith(f'{out} was tokenized for other inputs: ann_sha256: ')
    assert 'num_sentences: 3 (then) -> 7 (now)' in msg and 'ann_file' not in msg
    assert msg.endswith('pass --overwrite to start over, or use another folder.')

    tool.main(argv(few, out))  # the same inputs finish the shard
    with pytest.raises(SystemExit, match=r'was tokenized for other inputs: seed: 0 \(then\) -> '
                                         r'1 \(now\)\. Refusing'):
        tool.main(argv(few, out, '--seed', '1'))
    capsys.readouterr()
    tool.main(argv(few, out, '--chunk-size', '3'))  # chunking does not change a finished shard
    assert 'nothing to do' in capsys.readouterr().out

    tool.main(argv(few, out, '--seed', '1', '--overwrite'))
    log = capsys.readouterr().out
    assert f'--overwrite: deleted tokens.npy, offsets.npy, meta.json, run_record.json from ' \
        f'{out}.' in log and '3 sentences in 2 chunks: 0 done before' in log
    assert json.loads((out / 'run_record.json').read_text())['seed'] == 1

    (out / 'run_record.json').unlink()  # a shard of an older version: provenance unknown
    with pytest.raises(SystemExit, match='holds a finished shard without run_record.json'):
        tool.main(argv(few, out, '--seed', '1'))
    (tmp_path / 'latents').mkdir()
    (tmp_path / 'latents' / 'latents.npy').write_bytes(b'x')
    (tmp_path / 'latents' / 'meta.json').write_text('{}')
    for extra in ((), ('--overwrite', )):
        with pytest.raises(SystemExit, match=r'holds files this tool does not write '
                                             r'\(latents.npy\)'):
            tool.main(argv(ann, tmp_path / 'latents', *extra))
    assert (tmp_path / 'latents' / 'meta.json').exists()


def test_cli_checks(data, tmp_path, capsys):
    root, _ = data
    tool = load_tool()
    good = [str(root / 'ann.jsonl'), str(tmp_path / 'o'), '--tokenizer', str(root / 'tok.py')]
    for extra, message in ((['--num-workers', '-1'], '--num-workers must be >= 0'),
                           (['--seed', '-1'], '--seed must be >= 0, got -1'),
                           (['--bos', '-5'], '--bos must be >= 0'),
                           (['--checkpoint', str(tmp_path / 'no.pth')],
                            f'--checkpoint {tmp_path / "no.pth"} does not exist'),
                           (['--data-root', str(tmp_path / 'none')],
                            f'--data-root {tmp_path / "none"} is not a folder'),
                           (['--device', 'gpu0'], "--device must be cpu, cuda or cuda:N")):
        with pytest.raises(SystemExit):
            tool.parse_args(good + extra)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args([str(tmp_path / 'no.jsonl')] + good[1:])
    assert f'annotation file {tmp_path / "no.jsonl"} does not exist' in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"--bos/--eos/--pad/--vocab-size: special ids "
                                         r"{'bos': 8192, 'eos': 8193, 'pad': 8194} must be "
                                         r"distinct and lie in \[codebook=256, vocab_size=300\)"):
        tool.main(good + ['--device', 'cpu', '--vocab-size', '300'])
