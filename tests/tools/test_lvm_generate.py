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
    cfg, model = _tiny_model(tmp_path)  # also writes full.pth
    sd = model.state_dict()
    # the whole model (tokenizer included) loads, and gives back the same weights
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


def _tiny_model(tmp_path):
    """The toy config's LVM with a one-layer decoder, its config and its checkpoint file."""
    cfg = Config.fromfile(TOY)
    cfg.model.tokenizer.pop('init_cfg')
    cfg.model.backbone.arch = dict(embed_dims=32, hidden_dims=64, num_layers=1, num_heads=2)
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    torch.save(dict(state_dict=model.state_dict()), tmp_path / 'full.pth')
    return cfg, model


def test_context_images_both_ends(tmp_path):
    """--context-images C keeps the last C - 1 prompt images: 2 keeps only the last one, N + 1
    (and more) the whole prompt of N; 0 and 1 are refused, naming the prompt's image count."""
    _, model = _tiny_model(tmp_path)
    torch.manual_seed(1)
    prompt = torch.rand(1, 3, 3, 16, 16)

    def gen(images, context):
        return model.generate_images(images, num_new_images=1, context_images=context,
                                     temperature=0)

    assert torch.equal(gen(prompt, 2), gen(prompt[:, -1:], 16))  # the last image only
    assert torch.equal(gen(prompt, 3), gen(prompt[:, -2:], 16))
    assert torch.equal(gen(prompt, 4), gen(prompt, 16))  # N + 1: the whole prompt
    assert not torch.equal(gen(prompt, 2), gen(prompt, 16))  # the window matters here
    for context in (0, 1):
        with pytest.raises(ValueError, match=rf'context_images must be >= 2 \(the window holds '
                                             rf'context_images - 1 prompt images, here of 3, and '
                                             rf'the image being generated\), got {context}'):
            gen(prompt, context)
    with pytest.raises(ValueError, match='num_new_images must be >= 1, got 0'):
        model.generate_images(prompt, num_new_images=0)
    with pytest.raises(ValueError, match=r'expected temperature >= 0 \(0: greedy\), top_k >= 0 '
                                         r'\(0: no top-k\) and top_p in \(0, 1\]; got '
                                         r'temperature=-1, top_k=50, top_p=1.0'):
        model.generate_images(prompt, temperature=-1)


def test_tokenizer_of_another_codebook_names_the_tokenizer_file(tmp_path):
    tool = load_tool()
    cfg, model = _tiny_model(tmp_path)
    sd = model.state_dict()
    decoder = {k: v for k, v in sd.items() if not k.startswith('tokenizer.')}
    torch.save(dict(state_dict=decoder), tmp_path / 'decoder.pth')
    tok = {k[len('tokenizer.'):]: v for k, v in sd.items() if k.startswith('tokenizer.')}
    tok['quantize.embedding.weight'] = torch.zeros(64, tok['quantize.embedding.weight'].shape[1])
    torch.save(dict(state_dict=tok), tmp_path / 'vq64.pth')
    with pytest.raises(SystemExit) as exc:
        tool.load_model(cfg, str(tmp_path / 'decoder.pth'), str(tmp_path / 'vq64.pth'))
    assert str(exc.value) == (
        f'--tokenizer-checkpoint {tmp_path / "vq64.pth"}: the tokenizer has a codebook of 64 codes '
        '(quantize.embedding.weight (64, 16)), but the LVM is built for num_codes=32 (vocabulary '
        '132 = 32 codes + 100 special ids). Use the tokenizer the LVM was trained with, or a '
        'config whose model.num_codes and tokenizer match it.')
    assert 'decoder.pth' not in str(exc.value)
    # the same tokenizer inside the LVM checkpoint: that file is named
    torch.save(dict(state_dict={**decoder, **{f'tokenizer.{k}': v for k, v in tok.items()}}),
               tmp_path / 'both.pth')
    with pytest.raises(SystemExit, match=r'both.pth \(its tokenizer\): the tokenizer has a '
                                         r'codebook of 64 codes'):
        tool.load_model(cfg, str(tmp_path / 'both.pth'))


def test_prompt_images_unreadable_or_resized(tmp_path, capsys):
    from PIL import Image
    tool = load_tool()
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(SystemExit, match=rf'--prompt: {tmp_path / "notes.png"} is not an image '
                                         r'PIL can read \(cannot identify image file'):
        tool.open_images([str(tmp_path / 'notes.png')])
    Image.new('RGB', (20, 12)).save(tmp_path / 'wide.png')
    Image.new('RGB', (16, 16)).save(tmp_path / 'fit.png')
    images = tool.read_images([str(tmp_path / 'wide.png'), str(tmp_path / 'fit.png')], (16, 16))
    assert images.shape == (1, 2, 3, 16, 16)
    assert ("note: 1 prompt image(s) resized to 16x16 (HxW, the tokenizer's input size; no crop): "
            'wide.png 12x20') in capsys.readouterr().out
