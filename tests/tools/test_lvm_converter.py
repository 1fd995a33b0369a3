"""tools/model_converters/lvm_official.py on transformers LLaMA directories (sharded safetensors and
a .bin): the converted file loads into LVM strictly and gives LlamaForCausalLM's logits; bad
inputs (GQA, a missing key, no weights) are refused naming what is wrong."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from ..conftest import REPO, run_tool

transformers = pytest.importorskip('transformers')
TOOL = osp.join(REPO, 'tools', 'model_converters', 'lvm_official.py')
ARCH = dict(embed_dims=64, hidden_dims=128, num_layers=2, num_heads=4)


def _hf(num_kv_heads=4):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=8292, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=num_kv_heads, rms_norm_eps=1e-6,
        tie_word_embeddings=False, max_position_embeddings=4096)
    return transformers.LlamaForCausalLM(cfg).eval()


def _run(src, dst):
    return subprocess.run([sys.executable, TOOL, str(src), str(dst)], cwd=REPO, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize('safe', [True, False], ids=['sharded-safetensors', 'bin'])
def test_converted_llama_matches_transformers(tmp_path, safe):
    from visionllama_mm.models.lvm import LVM
    hf = _hf()
    src = tmp_path / 'hf'
    hf.save_pretrained(src, safe_serialization=safe, max_shard_size='500KB' if safe else '10GB')
    if safe:
        assert (src / 'model.safetensors.index.json').is_file()
    out = run_tool([sys.executable, TOOL, str(src), str(tmp_path / 'lvm.pth')])
    assert 'transformers LlamaForCausalLM -> LVM' in out and "'num_layers': 2" in out
    ckpt = torch.load(tmp_path / 'lvm.pth', weights_only=True)
    assert ckpt['meta']['arch'] == ARCH
    model = LVM(backbone=dict(type='LLaMADecoder', arch=ckpt['meta']['arch'])).eval()
    model.load_state_dict(ckpt['state_dict'])  # strict
    ids = torch.randint(0, 8192, (2, 33))
    with torch.no_grad():
        diff = (model(ids, mode='tensor') - hf(ids).logits).abs().max()
    assert diff <= 1e-4


def test_refuses_gqa_missing_keys_and_empty_dirs(tmp_path):
    src = tmp_path / 'gqa'
    _hf(num_kv_heads=2).save_pretrained(src)
    proc = _run(src, tmp_path / 'x.pth')
    assert proc.returncode != 0 and 'grouped-query attention' in proc.stdout
    assert not (tmp_path / 'x.pth').exists()

    from visionllama_mm.models.lvm.convert import convert_hf_llama
    src = tmp_path / 'missing'
    hf = _hf()
    hf.save_pretrained(src, safe_serialization=False)
    sd = torch.load(src / 'pytorch_model.bin', weights_only=True)
    sd.pop('model.layers.1.mlp.up_proj.weight')
    sd['model.layers.1.extra.weight'] = torch.zeros(1)
    torch.save(sd, src / 'pytorch_model.bin')
    with pytest.raises(ValueError, match=r"missing \(1\): \['model.layers.1.mlp.up_proj.weight'\]"
                       r".*unexpected \(1\): \['model.layers.1.extra.weight'\]"):
        convert_hf_llama(str(src))

    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'config.json').write_text(json.dumps(hf.config.to_dict()))
    with pytest.raises(FileNotFoundError, match='no model.safetensors'):
        convert_hf_llama(str(empty))
    with pytest.raises(FileNotFoundError, match='config.json'):
        convert_hf_llama(str(tmp_path / 'nowhere'))
