"""tools/lvm/generate.py loads a checkpoint key by key: a model whose weights do not fit the config
is refused naming the keys, before anything is generated."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from ..conftest import REPO

TOOL = osp.join(REPO, 'tools', 'lvm', 'generate.py')
TOY = osp.join(REPO, 'configs', 'lvm', 'lvm_llama-mini_1xb16-400it_digits-counting.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('lvm_generate', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkpoint_keys_checked(tmp_path):
    tool = load_tool()
    cfg = Config.fromfile(TOY)
    cfg.model.tokenizer.pop('init_cfg')
    cfg.model.backbone.arch = dict(embed_dims=32, hidden_dims=64, num_layers=1, num_heads=2)
    from mmpretrain.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    sd = MODELS.build(cfg.model).state_dict()
    # the whole model (tokenizer included) loads, and gives back the same weights
    torch.save(dict(state_dict=sd), tmp_path / 'full.pth')
    loaded = tool.load_model(cfg, str(tmp_path / 'full.pth')).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    # decoder weights only: the tokenizer may come from elsewhere (init_cfg / --tokenizer-checkpoint)
    decoder = {k: v for k, v in sd.items() if not k.startswith('tokenizer.')}
    torch.save(dict(state_dict=decoder), tmp_path / 'decoder.pth')
    tool.load_model(cfg, str(tmp_path / 'decoder.pth'))
    # a renamed key and a wrong shape are named
    bad = dict(decoder)
    bad['backbone.norm.scale'] = bad.pop('backbone.model.norm.weight')
    bad['backbone.lm_head.weight'] = torch.zeros(5, 32)
    torch.save(dict(state_dict=bad), tmp_path / 'bad.pth')
    with pytest.raises(SystemExit, match=r"bad.pth: does not match the config's model: the keys do "
                                         r"not match the model: missing \(1\): "
                                         r"\['backbone.model.norm.weight'\]; unexpected \(1\): "
                                         r"\['backbone.norm.scale'\]; shape mismatch \(1\): "
                                         r"\['backbone.lm_head.weight: \(5, 32\) != \(132, 32\)'\]"):
        tool.load_model(cfg, str(tmp_path / 'bad.pth'))
    # a tokenizer checkpoint with a part of the tokenizer missing
    tok = {k[len('tokenizer.'):]: v for k, v in sd.items() if k.startswith('tokenizer.')}
    tok.pop('quantize.embedding.weight')
    torch.save(tok, tmp_path / 'tok.pth')
    with pytest.raises(SystemExit, match=r"missing \(1\): \['tokenizer.quantize.embedding.weight'\]"):
        tool.load_model(cfg, str(tmp_path / 'decoder.pth'), str(tmp_path / 'tok.pth'))
