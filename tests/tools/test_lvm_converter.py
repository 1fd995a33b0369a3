"""tools/model_converters/lvm_official.py on transformers LLaMA directories (sharded safetensors and
a .bin): the converted file loads into LVM strictly and gives LlamaForCausalLM's logits; bad
inputs (GQA, a missing key, no weights) are refused naming what is wrong."""
import json
import os.path as osp
import sys

import pytest
import torch
import transformers

from ..conftest import REPO, run_python, run_tool

TOOL = osp.join(REPO, 'tools', 'model_converters', 'lvm_official.py')
ARCH = dict(embed_dims=64, feedforward_channels=128, num_layers=2, num_heads=4)


def _hf(num_kv_heads=4):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=8292, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=num_kv_heads, rms_norm_eps=1e-6,
        tie_word_embeddings=False, max_position_embeddings=4096)
    return transformers.LlamaForCausalLM(cfg).eval()


def _run(src, dst):
    return run_python([sys.executable, TOOL, str(src), str(dst)])


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


def test_converted_muse_vqgan_matches_reference(tmp_path):
    """A MUSE VQGAN directory (config.json + pytorch_model.bin in the official layout, from the
    independent reference) -> our VQGANTokenizer via the converter: same ids and pixels; a renamed
    key is refused naming it."""
    from visionllama_mm.models.lvm import VQGANTokenizer
    from visionllama_mm.models.lvm.vqgan import MUSE_VQGAN_ARCH
    from ..models.lvm.muse_vqgan_reference import RefMuseVQGAN
    arch = dict(resolution=16, hidden_channels=32, channel_mult=[1, 2], num_res_blocks=2,
                attn_resolutions=[16], no_attn_mid_block=False, z_channels=8,
                quantized_embed_dim=8, num_embeddings=64)
    torch.manual_seed(0)
    ref = RefMuseVQGAN({**MUSE_VQGAN_ARCH, **arch}).eval()
    ref.quantize.embedding.weight.data.normal_(0, 0.3)
    src = tmp_path / 'vqvae_ckpts'
    src.mkdir()
    (src / 'config.json').write_text(json.dumps({'_class_name': 'VQGANModel', **arch,
                                                 'dropout': 0.0, 'commitment_cost': 0.25}))
    torch.save(ref.state_dict(), src / 'pytorch_model.bin')
    out = _run(src, tmp_path / 'tok.pth')
    assert out.returncode == 0, out.stdout
    assert 'MUSE VQGAN' in out.stdout
    ckpt = torch.load(tmp_path / 'tok.pth', weights_only=True)
    tok = VQGANTokenizer(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'tok.pth')))
    tok.init_weights()
    assert ckpt['meta']['format'] == 'muse-vqgan'
    x = torch.rand(2, 3, 16, 16)
    zq, ids = ref.encode(x)
    assert torch.equal(tok.encode(x), ids)
    with torch.no_grad():
        assert (tok.decode(ids, clamp=False) - ref.decode_code(ids)).abs().max() < 1e-5
    sd = ref.state_dict()
    sd['quantize.codebook.weight'] = sd.pop('quantize.embedding.weight')
    torch.save(sd, src / 'pytorch_model.bin')
    out = _run(src, tmp_path / 'bad.pth')
    assert out.returncode != 0
    assert "missing keys ['quantize.embedding.weight']" in out.stdout
    assert "unexpected keys ['quantize.codebook.weight']" in out.stdout
    assert not osp.exists(tmp_path / 'bad.pth')


def test_export_to_transformers_round_trip(tmp_path, capsys):
    """A randomly initialised LVM as tools/train.py saves it (the config text in
    ``meta['cfg']`` gives the head count, RoPE base and RMSNorm epsilon) -> ``--to
    transformers`` -> ``LlamaForCausalLM.from_pretrained`` loads the folder and gives our logits;
    the folder converts back to our state dict exactly. Without meta the head count must be
    given (these sizes are none of LLaMADecoder's names)."""
    from safetensors.torch import load_file

    from visionllama_mm.converters import run_cli
    from visionllama_mm.models.lvm import LVM
    from visionllama_mm.models.lvm.convert import convert_hf_llama
    arch = dict(embed_dims=64, feedforward_channels=128, num_layers=2, num_heads=4)
    ours = LVM(backbone=dict(type='LLaMADecoder', arch=arch, rope_theta=500., norm_eps=1e-5))
    torch.manual_seed(3)
    for p in ours.parameters():
        torch.nn.init.normal_(p, std=0.1)
    cfg = (f"model = dict(type='LVM', backbone=dict(type='LLaMADecoder', arch={arch!r}, "
           'rope_theta=500., norm_eps=1e-5))')
    src, dst = tmp_path / 'iter_400.pth', tmp_path / 'lvm_hf'
    torch.save({'state_dict': ours.state_dict(), 'meta': {'cfg': cfg}}, src)
    run_cli('LVM', '', [str(src), str(dst), '--to', 'transformers'])
    assert capsys.readouterr().out == f'exported: LVM -> transformers\nwrote: {dst}\n'
    assert sorted(p.name for p in dst.iterdir()) == ['config.json', 'model.safetensors']
    hf = transformers.LlamaForCausalLM.from_pretrained(dst).eval()
    config = hf.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.rope_theta,
            config.rms_norm_eps, config.vocab_size) == (4, 4, 500., 1e-5, 8292)
    assert sorted(load_file(str(dst / 'model.safetensors'))) == sorted(hf.state_dict())
    ids = torch.randint(0, 8292, (2, 33), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = ours(ids, mode='tensor')
        diff = (hf(ids).logits - want).abs().max().item()
    print(f'--to transformers: max |logit diff| {diff:.2e} (logits up to {want.abs().max():.2f})')
    assert want.abs().max() > 0.1 and diff <= 1e-4
    back, back_arch, kwargs = convert_hf_llama(str(dst))
    assert back_arch == arch and kwargs == dict(vocab_size=8292, rope_theta=500., norm_eps=1e-5)
    assert sorted(back) == sorted(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())

    bare = tmp_path / 'bare.pth'
    torch.save(ours.state_dict(), bare)
    with pytest.raises(SystemExit, match=r"the head count is not in the shapes \(\{'embed_dims': "
                                         r"64, 'feedforward_channels': 128, 'num_layers': 2\} is "
                                         r"none of LLaMADecoder's named sizes\): give it with "
                                         r'--num-heads$'):
        run_cli('LVM', '', [str(bare), str(tmp_path / 'x'), '--to', 'transformers'])
    assert not (tmp_path / 'x').exists()
