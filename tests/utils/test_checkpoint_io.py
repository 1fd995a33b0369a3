"""visionllama_mm.utils.read_state_dict and the converters that read through it: a timm ConvNeXt V2
and a timm ViTamin, a transformers LLaMA and an official DiT-LLaMA checkpoint written as .pth/.bin,
.safetensors, sharded (with an index, by transformers and huggingface_hub) and as a hub folder
convert to exactly the same state dict from every form; broken files, indexes and folders are
refused in one message naming the file and the fault."""
import argparse
import importlib.util
import json
import os.path as osp
import shutil
import sys

import pytest
import timm
import torch
import transformers
from huggingface_hub import save_torch_state_dict
from safetensors.torch import save_file

from visionllama_mm.converters import convert_state_dict, load_source, run_cli
from visionllama_mm.utils import checkpoint_files, read_state_dict
from ..conftest import REPO, run_tool


def _randomise(model, seed=0):
    """Every parameter distinct and non-zero, so that a swapped or dropped tensor shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


def _assert_same(ours, ref):
    """Exactly equal state dicts: the same keys, dtypes, shapes and values."""
    assert sorted(ours) == sorted(ref)
    for k, v in ref.items():
        assert ours[k].dtype == v.dtype and torch.equal(ours[k], v), k


def _tool_module(name):
    path = osp.join(REPO, 'tools', 'model_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_converter_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _exit_message(fn):
    with pytest.raises(SystemExit) as exc:
        fn()
    return str(exc.value.code)


@pytest.fixture(scope='module')
def convnext(tmp_path_factory):
    """timm's convnextv2_atto as the hub ships it (a folder with model.safetensors) and as a
    bare .pth state dict."""
    root = tmp_path_factory.mktemp('convnextv2')
    sd = _randomise(timm.create_model('convnextv2_atto', pretrained=False)).state_dict()
    torch.save(sd, root / 'convnextv2_atto.pth')
    (root / 'hub').mkdir()
    save_file(sd, str(root / 'hub' / 'model.safetensors'))
    return root


def test_convnextv2_safetensors_equals_pth(convnext):
    kind, ref = convert_state_dict(load_source(str(convnext / 'convnextv2_atto.pth')))
    assert kind == 'timm-convnextv2'
    shutil.copy(convnext / 'hub' / 'model.safetensors', convnext / 'renamed.pth')
    for src in ('hub/model.safetensors', 'hub', 'renamed.pth'):  # a name does not decide
        kind, ours = convert_state_dict(load_source(str(convnext / src)))
        assert kind == 'timm-convnextv2', src
        _assert_same(ours, ref)


def test_convnextv2_cli_reads_a_hub_folder(convnext, tmp_path):
    """The one subprocess run: the CLI as a user calls it on a timm hub snapshot."""
    dst = tmp_path / 'ours.pth'
    out = run_tool([sys.executable, 'tools/model_converters/convnextv2_official.py',
                    str(convnext / 'hub'), str(dst)])
    assert f'detected: timm-convnextv2\nwrote: {dst}' in out, out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta'] == {'converted_from': 'hub', 'source_format': 'timm-convnextv2'}
    _assert_same(ckpt['state_dict'],
                 convert_state_dict(load_source(str(convnext / 'convnextv2_atto.pth')))[1])


def test_vitamin_sharded_safetensors_equals_pth(tmp_path, capsys):
    """A timm ViTamin split by huggingface_hub into 3 shards + model.safetensors.index.json:
    the index, its folder and the converter CLI all give the .pth's conversion."""
    model = timm.create_model('vitamin_small_224', num_classes=10, depth=2)
    sd = _randomise(model).state_dict()
    torch.save({'state_dict': sd, 'arch': 'vitamin_small_224'}, tmp_path / 'timm_train.pth')
    kind, ref = convert_state_dict(load_source(str(tmp_path / 'timm_train.pth')))
    assert kind == 'timm-vitamin'
    hub = tmp_path / 'hub'
    hub.mkdir()
    save_torch_state_dict(sd, hub, max_shard_size='6MB')
    index = hub / 'model.safetensors.index.json'
    shards = sorted(set(json.loads(index.read_text())['weight_map'].values()))
    assert shards == [f'model-0000{i}-of-00003.safetensors' for i in (1, 2, 3)]
    assert checkpoint_files(str(hub)) == (str(index), [str(hub / s) for s in shards])
    for src in (index, hub):
        kind, ours = convert_state_dict(load_source(str(src)))
        assert kind == 'timm-vitamin'
        _assert_same(ours, ref)
    run_cli('ViTamin', '', [str(index), str(tmp_path / 'ours.pth')])
    assert capsys.readouterr().out == f'detected: timm-vitamin\nwrote: {tmp_path / "ours.pth"}\n'
    _assert_same(torch.load(tmp_path / 'ours.pth', weights_only=True)['state_dict'], ref)


def _llama(folder, **save):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=8292, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, rms_norm_eps=1e-6, tie_word_embeddings=False)
    _randomise(transformers.LlamaForCausalLM(cfg)).save_pretrained(folder, **save)
    return folder


def test_lvm_decoder_sharded_safetensors_and_bin_agree(tmp_path, capsys):
    """transformers' save_pretrained: 3 safetensors shards, 3 .bin shards (each with an index)
    and one .bin convert to the same LVM state dict; the CLI takes the sharded folder."""
    from visionllama_mm.models.lvm.convert import convert_hf_llama
    ref, arch, _ = convert_hf_llama(str(_llama(tmp_path / 'bin', safe_serialization=False)))
    assert arch == dict(embed_dims=64, feedforward_channels=128, num_layers=2, num_heads=4)
    for name, safe in (('st', True), ('bin_sharded', False)):
        src = _llama(tmp_path / name, safe_serialization=safe, max_shard_size='1MB')
        index = src / ('model.safetensors.index.json' if safe else 'pytorch_model.bin.index.json')
        found_index, shards = checkpoint_files(str(src))
        assert found_index == str(index) and len(shards) == 3
        _assert_same(convert_hf_llama(str(src))[0], ref)
    _tool_module('lvm_official').main([str(tmp_path / 'st'), str(tmp_path / 'lvm.pth')])
    assert 'transformers LlamaForCausalLM -> LVM' in capsys.readouterr().out
    _assert_same(torch.load(tmp_path / 'lvm.pth', weights_only=True)['state_dict'], ref)


def test_dit_llama_official_pth_and_safetensors_agree(tmp_path):
    """What dit/train.py saves ({'model', 'ema', 'opt', 'args'}) and its EMA weights as a released
    .safetensors give the same converted denoiser."""
    from ..models.diffusion.official_dit_reference import OfficialDiTLLaMA
    ema, model = (_randomise(OfficialDiTLLaMA(dim=64, heads=4), seed) for seed in (0, 1))
    torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt={},
                    args=argparse.Namespace(model='DiT-LLaMA-tiny/2', num_classes=10)),
               tmp_path / '0400000.pt')
    save_file(ema.state_dict(), str(tmp_path / 'ema.safetensors'))
    tool = _tool_module('dit_llama_official')
    outs = {}
    for src in ('0400000.pt', 'ema.safetensors'):
        tool.main([str(tmp_path / src), str(tmp_path / f'{src}.out.pth'), '--num-heads', '4'])
        outs[src] = torch.load(tmp_path / f'{src}.out.pth', weights_only=True)
    pth, st = outs['0400000.pt'], outs['ema.safetensors']
    assert (pth['meta']['weights'], st['meta']['weights']) == ('ema', 'state dict')
    assert pth['meta']['denoiser'] == st['meta']['denoiser']
    assert pth['meta']['notes'] == st['meta']['notes']  # e.g. the frozen pos_embed dropped
    _assert_same(st['state_dict'], pth['state_dict'])


# --------------------------------------------------------------------------------------------------
# errors


def _tensors():
    return {'a': torch.arange(12.).reshape(3, 4), 'b': torch.ones(5, dtype=torch.int64)}


def test_broken_safetensors_files(tmp_path, capsys):
    good = tmp_path / 'good.safetensors'
    save_file(_tensors(), str(good))
    data = good.read_bytes()
    header = int.from_bytes(data[:8], 'little')
    need = len(data) - 8 - header  # 12 float32 + 5 int64 = 88 bytes of tensor data
    cases = {
        'cut.safetensors': (data[:-8], f'truncated: its tensors need {need} bytes of data after '
                            f'the header, the file has {need - 8}'),
        'head.safetensors': (data[:40], f'truncated: its header says {header} bytes of JSON, the '
                             'file has 40 bytes in all'),
        'notes.safetensors': (b'epoch 20: top-1 98.1\n', "it looks like a text file (starts "
                              "with 'epoch 20: top-1 98.1\\n'); a safetensors file starts with "
                              'the 8-byte length of its JSON header, then "{"'),
        'joined.safetensors': (data + data, f'{len(data)} bytes after the last tensor (two '
                               'files joined, or a damaged file)'),
    }
    for name, (content, fault) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError) as err:
            read_state_dict(str(tmp_path / name))
        assert str(err.value) == f'{tmp_path / name} is not a readable safetensors file: {fault}'
    torch.save(_tensors(), tmp_path / 'torch.safetensors')
    with pytest.raises(ValueError, match=r'torch.safetensors is not a readable safetensors file: '
                       r'it is a torch.save file \(a zip archive or a pickle\); give it a .pth '
                       'name'):
        read_state_dict(str(tmp_path / 'torch.safetensors'))
    # through a converter: one line naming the file and the fault, nothing written
    src, dst = tmp_path / 'cut.safetensors', tmp_path / 'out.pth'
    msg = _exit_message(lambda: run_cli('ConvNeXt V2', '', [str(src), str(dst)]))
    assert msg == (f'error: {src}: {src} is not a readable safetensors file: '
                   f'{cases["cut.safetensors"][1]}')
    assert not dst.exists()


def _sharded(folder):
    """Two shards and their index, as transformers / huggingface_hub write them."""
    folder.mkdir()
    save_file({'a': torch.zeros(2)}, str(folder / 'model-00001-of-00002.safetensors'))
    save_file({'b': torch.ones(2), 'c': torch.ones(3)},
              str(folder / 'model-00002-of-00002.safetensors'))
    index = folder / 'model.safetensors.index.json'
    weight_map = {'a': 'model-00001-of-00002.safetensors', 'b': 'model-00002-of-00002.safetensors',
                  'c': 'model-00002-of-00002.safetensors'}
    index.write_text(json.dumps({'metadata': {'total_size': 28}, 'weight_map': weight_map}))
    return index, weight_map


def test_bad_indexes_and_folders(tmp_path, capsys):
    index, weight_map = _sharded(tmp_path / 'ok')
    assert {k: v.tolist() for k, v in read_state_dict(str(index)).items()} == {
        'a': [0., 0.], 'b': [1., 1.], 'c': [1., 1., 1.]}

    # a key the weight_map puts in the first shard, which holds another key instead
    index.write_text(json.dumps({'weight_map': {**weight_map, 'c': weight_map['a']}}))
    with pytest.raises(ValueError) as err:
        read_state_dict(str(tmp_path / 'ok'))
    assert str(err.value) == (
        f"{index}: the shards disagree with its weight_map: model-00001-of-00002.safetensors "
        "lacks ['c'] (1), which the weight_map puts there; model-00002-of-00002.safetensors "
        "holds ['c'] (1), which the weight_map puts in model-00001-of-00002.safetensors")

    index.write_text(json.dumps({'weight_map': {**weight_map, 'd': 'model-00003-of-00003.bin'}}))
    with pytest.raises(FileNotFoundError,
                       match=r"model.safetensors.index.json: its weight_map names the shard\(s\) "
                       r"\['model-00003-of-00003.bin'\], which are not in .*/ok; found \["):
        read_state_dict(str(index))

    index.write_text('{"metadata": {}')
    with pytest.raises(ValueError, match=r'index.json is not a shard index: not JSON \('):
        read_state_dict(str(index))
    index.write_text(json.dumps({'metadata': {}}))
    with pytest.raises(ValueError, match=r'index.json is not a shard index: no "weight_map" of '
                       r"tensor name -> shard file \(top-level keys \['metadata'\]\)"):
        read_state_dict(str(index))

    # a folder without any of the known weight files: what it holds is listed
    (tmp_path / 'snapshot').mkdir()
    (tmp_path / 'snapshot' / 'weights.safetensors').write_bytes(b'')
    with pytest.raises(FileNotFoundError,
                       match=r"snapshot: no model.safetensors, model.safetensors.index.json, "
                       r"pytorch_model.bin, .* in this folder; found \['weights.safetensors'\]. "
                       'Give the weights file itself as the path'):
        read_state_dict(str(tmp_path / 'snapshot'))

    # a converter never writes over a file it reads
    folder = tmp_path / 'hub'
    _sharded(folder)
    shard = folder / 'model-00002-of-00002.safetensors'
    assert _exit_message(lambda: run_cli('ViTamin', '', [str(folder), str(shard)])) == '2'
    assert (f"error: argument dst: '{shard}' is the source checkpoint itself; converting would "
            'overwrite it') in capsys.readouterr().err
