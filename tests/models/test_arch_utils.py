"""The helpers every family shares (``visionllama_mm.models.utils``): ``parse_arch``, activation
checkpointing and the renamed arguments; and that the renames changed no model."""
import glob
import hashlib
import os.path as osp
import re
import warnings

import pytest
import torch

from visionllama_mm.models.backbones import (ConvNeXtV2, LLaMADecoder, PyramidVisionLLaMA,
                                             VisionLLaMA, ViTamin)
from visionllama_mm.models.diffusion import DiTLLaMA
from visionllama_mm.models.lvm import VQGANTokenizer
from visionllama_mm.models.multimodal import CLIPTextTransformer
from visionllama_mm.models.selfsup import FCMAEDecoder, MAEVisionLLaMA, SparseConvNeXtV2
from visionllama_mm.models.utils import checkpoint_call, parse_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

ZOO = {'small': dict(a=1, b=2), 's': dict(a=1, b=2), 'base': dict(a=3, b=4)}


# ------------------------------------------------------------------------------- parse_arch
def test_parse_arch_names_and_dicts():
    got = parse_arch('Small', ZOO, required=('a', 'b'), owner='M')
    assert got == dict(a=1, b=2) and got is not ZOO['small']  # case-insensitive, a copy
    got['a'] = 9
    assert ZOO['small']['a'] == 1
    assert parse_arch(dict(a=5, b=6), ZOO, required=('a', 'b')) == dict(a=5, b=6)
    # optional keys with defaults are filled in, for names and dicts alike
    assert parse_arch('s', ZOO, required=('a', 'b'), optional=dict(c=7)) == dict(a=1, b=2, c=7)
    assert parse_arch(dict(a=5, b=6, c=0), ZOO, required=('a', 'b'), optional=dict(c=7)) == \
        dict(a=5, b=6, c=0)


@pytest.mark.parametrize('arch, kwargs, message', [
    ('huge', dict(required=('a', 'b')),
     "M: unknown arch 'huge'; valid names: base, s, small, or a dict with keys ['a', 'b']."),
    ('huge', dict(optional=dict(a=1, b=2)),
     "M: unknown arch 'huge'; valid names: base, s, small, or a dict with any of the keys "
     "['a', 'b']."),
    (dict(a=1), dict(required=('a', 'b')),
     "M: a custom arch must be a dict with keys ['a', 'b']; missing ['b'] in {'a': 1}."),
    (dict(a=1, b=2, c=3, d=4), dict(required=('a', 'b'), optional=('c', )),
     "M: unknown arch keys ['d']; valid keys: ['a', 'b', 'c']."),
    (3, dict(required=('a', 'b')), "M: a custom arch must be a dict with keys ['a', 'b'], got 3."),
    (dict(a=1, b=2, old=3), dict(required=('a', 'b'), aliases=dict(old='b')),
     "M: arch has both 'old' and 'b'; 'old' is the deprecated name of 'b', give only 'b'."),
], ids=['name', 'name_no_required', 'missing', 'unknown', 'not_a_dict', 'old_and_new'])
def test_parse_arch_errors(arch, kwargs, message):
    with pytest.raises(ValueError) as err:
        parse_arch(arch, ZOO, owner='M', **kwargs)
    assert str(err.value) == message


def test_parse_arch_alias_warns_and_renames():
    with pytest.warns(DeprecationWarning) as record:
        got = parse_arch(dict(a=1, old=2), ZOO, required=('a', 'b'), aliases=dict(old='b'),
                         owner='M')
    assert got == dict(a=1, b=2)
    assert str(record[0].message) == ("M: the arch key 'old' is deprecated and will be removed "
                                      "in the next release; use 'b'.")


# ------------------------------------------------------------------ renamed arguments
def _same_model(old, new):
    """Two builds with the same seed: the same parameter names, shapes and values."""
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning) as record:
        a = old()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)  # the new names warn about nothing
        b = new()
    sa, sb = a.state_dict(), b.state_dict()
    assert [(k, v.shape) for k, v in sa.items()] == [(k, v.shape) for k, v in sb.items()]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    return [str(r.message) for r in record if r.category is DeprecationWarning]


@pytest.mark.parametrize('old, new, message', [
    (lambda: DiTLLaMA(arch=dict(embed_dims=32, depth=2, num_heads=2), input_size=8),
     lambda: DiTLLaMA(arch=dict(embed_dims=32, num_layers=2, num_heads=2), input_size=8),
     "DiTLLaMA: the arch key 'depth' is deprecated and will be removed in the next release; "
     "use 'num_layers'."),
    (lambda: LLaMADecoder(arch=dict(embed_dims=32, hidden_dims=48, num_layers=1, num_heads=2)),
     lambda: LLaMADecoder(arch=dict(embed_dims=32, feedforward_channels=48, num_layers=1,
                                    num_heads=2)),
     "LLaMADecoder: the arch key 'hidden_dims' is deprecated and will be removed in the next "
     "release; use 'feedforward_channels'."),
    (lambda: PyramidVisionLLaMA(arch=dict(embed_dims=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                          num_heads=[1, 1, 1, 1], ffn_dims=[8, 8, 8, 16])),
     lambda: PyramidVisionLLaMA(arch=dict(embed_dims=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                                          num_heads=[1, 1, 1, 1],
                                          feedforward_channels=[8, 8, 8, 16])),
     "PyramidVisionLLaMA: the arch key 'ffn_dims' is deprecated and will be removed in the next "
     "release; use 'feedforward_channels'."),
    (lambda: ViTamin(arch=dict(stem_channels=8, channels=(8, 16), depths=(1, 1), embed_dims=32,
                               num_layers=1, num_heads=2, mlp_ratio=3.0), img_size=32),
     lambda: ViTamin(arch=dict(stem_channels=8, channels=(8, 16), depths=(1, 1), embed_dims=32,
                               num_layers=1, num_heads=2, feedforward_channels=96), img_size=32),
     "ViTamin: the argument 'arch.mlp_ratio' is deprecated and will be removed in the next "
     "release; use 'arch.feedforward_channels'."),
    (lambda: FCMAEDecoder(in_channels=16, embed_dims=8, depth=2),
     lambda: FCMAEDecoder(in_channels=16, embed_dims=8, num_layers=2),
     "FCMAEDecoder: the argument 'depth' is deprecated and will be removed in the next release; "
     "use 'num_layers'."),
    # the old text tower: width = token channels, embed_dims = output dims
    (lambda: CLIPTextTransformer(embed_dims=16, width=32, num_layers=1, num_heads=2,
                                 vocab_size=50, mlp_ratio=2.0),
     lambda: CLIPTextTransformer(embed_dims=32, proj_dims=16, num_layers=1, num_heads=2,
                                 vocab_size=50, feedforward_channels=64),
     'CLIPTextTransformer: width=32, embed_dims=16 are the deprecated names (removed in the next '
     'release); the token channels are now embed_dims and the output dims proj_dims: use '
     'embed_dims=32, proj_dims=16.'),
], ids=['dit_depth', 'llama_hidden_dims', 'pyramid_ffn_dims', 'vitamin_mlp_ratio',
        'fcmae_decoder_depth', 'clip_width'])
def test_old_names_build_the_same_model_with_a_warning(old, new, message):
    assert message in _same_model(old, new)


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(ValueError) as err:
        CLIPTextTransformer(embed_dims=16, width=32, proj_dims=16)
    assert str(err.value) == ('CLIPTextTransformer: got both width (deprecated) and proj_dims; '
                              'give embed_dims (the token channels) and proj_dims (the output '
                              'dims) only.')
    with pytest.raises(ValueError) as err:
        FCMAEDecoder(in_channels=16, depth=2, num_layers=3)
    assert str(err.value) == ("FCMAEDecoder: got both 'depth' and 'num_layers'; 'depth' is the "
                              "deprecated name of 'num_layers', give only 'num_layers'.")


# Parameter count, state-dict size and a digest of the sorted (key, shape) list of named archs,
# measured with the code before the renames: they must not move.
BEFORE_RENAMES = {
    'PyramidVisionLLaMA-s': (lambda: PyramidVisionLLaMA(arch='s'), 25391872, 286,
                             '50df46298e06'),
    'ViTamin-s': (lambda: ViTamin(arch='s'), 21877696, 259, '349f39f78488'),
    'LLaMADecoder-vqlm_300m': (lambda: LLaMADecoder(arch='vqlm_300m'), 290968576, 201,
                               '221f52eccd94'),
    'DiTLLaMA-xl': (lambda: DiTLLaMA(arch='xl'), 674673440, 235, '043249016c6d'),
    'CLIPTextTransformer': (lambda: CLIPTextTransformer(), 63428096, 149, 'fee81e82d7b5'),
    'FCMAEDecoder': (lambda: FCMAEDecoder(in_channels=320), 3871232, 15, '1fa6fcdaf0a6'),
    'VQGANTokenizer-muse': (lambda: VQGANTokenizer('muse'), 146244675, 277, 'cea5501a82a3'),
}


@pytest.mark.parametrize('name', list(BEFORE_RENAMES))
def test_named_archs_keep_their_parameters_and_keys(name):
    build, params, keys, digest = BEFORE_RENAMES[name]
    with torch.device('meta'):
        model = build()
    sd = model.state_dict()
    sig = '\n'.join(f'{k}:{tuple(v.shape)}' for k, v in sorted(sd.items()))
    assert (sum(p.numel() for p in model.parameters()), len(sd),
            hashlib.sha1(sig.encode()).hexdigest()[:12]) == (params, keys, digest)


def _deprecated_names():
    """Every old argument / arch key name the package's classes still read."""
    classes = (DiTLLaMA, LLaMADecoder, PyramidVisionLLaMA, ViTamin, FCMAEDecoder,
               CLIPTextTransformer, VQGANTokenizer, VisionLLaMA, ConvNeXtV2)
    names = set()
    for cls in classes:
        names |= {n.split('.')[-1] for n in getattr(cls, 'deprecated_names', ())}
        names |= set(getattr(cls, 'arch_aliases', {}))
    return names


def test_no_shipped_config_uses_an_old_name():
    names = _deprecated_names()
    assert names == {'depth', 'hidden_dims', 'ffn_dims', 'mlp_ratio', 'width'}
    # a keyword (name=), a dict key ('name':) or a --cfg-options path (.name=)
    pattern = re.compile(r"(?:\b|\.)(%s)\s*=|['\"](%s)['\"]\s*:" % (('|'.join(names), ) * 2))
    files = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    files.append(osp.join(REPO, 'visionllama_mm', 'recipes.py'))
    hits = [f'{osp.relpath(f, REPO)}:{i}: {line.strip()}' for f in sorted(files)
            for i, line in enumerate(open(f), 1) if pattern.search(line)]
    assert len(files) > 100 and not hits, '\n'.join(hits)


@pytest.mark.parametrize('config', [
    'quickstart/visionllama-tiny-p4_1xb64-20e_digits.py',
    'dit_llama/dit_llama-tiny-p2_1xb64-2000it_digits-8px.py',
    'lvm/lvm_llama-mini_1xb16-400it_digits-counting.py',
    'vitamin/clip_vitamin-tiny_1xb64-300it_digits.py',
    'convnextv2/fcmae_convnextv2-atto_8xb64-accum8-coslr-800e_in1k.py',
])
def test_a_shipped_config_of_each_family_builds_without_a_deprecation(config):
    from mmengine.config import Config

    from visionllama_mm.models.builder import build_model_on_meta
    cfg = Config.fromfile(osp.join(REPO, 'configs', config))
    with warnings.catch_warnings():
        warnings.simplefilter('error', DeprecationWarning)
        model, _ = build_model_on_meta(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0


# --------------------------------------------------------------- activation checkpointing
def _tiny_vqgan(**kw):
    return VQGANTokenizer(dict(resolution=16, hidden_channels=32, channel_mult=(1, 2),
                               num_res_blocks=1, attn_resolutions=(16, ), z_channels=8,
                               quantized_embed_dim=8, num_embeddings=16), frozen=False, **kw)


def _vqgan_forward(m, x):
    z_q, _, loss = m.encode_latents(x)
    return m.decode_latents(z_q), loss


VIT = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
CNX = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])
FAMILIES = {
    'VisionLLaMA': (lambda **kw: VisionLLaMA(arch=VIT, img_size=32, patch_size=8, **kw),
                    lambda m: m(torch.rand(2, 3, 32, 32))),
    'MAEVisionLLaMA': (lambda **kw: MAEVisionLLaMA(arch=VIT, img_size=32, patch_size=8, **kw),
                       lambda m: m(torch.rand(2, 3, 32, 32))[0]),
    'PyramidVisionLLaMA': (
        lambda **kw: PyramidVisionLLaMA(arch=dict(embed_dims=[8, 16, 16, 16], depths=[2, 1, 1, 1],
                                                  num_heads=[1, 1, 1, 1],
                                                  feedforward_channels=[8, 8, 8, 16]), **kw),
        lambda m: m(torch.rand(1, 3, 32, 32))),
    'ConvNeXtV2': (lambda **kw: ConvNeXtV2(arch=CNX, **kw), lambda m: m(torch.rand(2, 3, 32, 32))),
    'SparseConvNeXtV2': (lambda **kw: SparseConvNeXtV2(arch=CNX, **kw),
                         lambda m: m(torch.rand(2, 3, 64, 64))[0]),
    'ViTamin': (lambda **kw: ViTamin(arch=dict(stem_channels=8, channels=(8, 16), depths=(1, 1),
                                               embed_dims=32, num_layers=2, num_heads=2),
                                     img_size=32, **kw),
                lambda m: m(torch.rand(2, 3, 32, 32))),
    'LLaMADecoder': (lambda **kw: LLaMADecoder(arch=dict(embed_dims=32, feedforward_channels=48,
                                                         num_layers=2, num_heads=2),
                                               vocab_size=50, **kw),
                     lambda m: m(torch.randint(0, 50, (2, 6)))),
    'DiTLLaMA': (lambda **kw: DiTLLaMA(arch=dict(embed_dims=32, num_layers=2, num_heads=2),
                                       input_size=8, num_classes=10, **kw),
                 lambda m: m(torch.randn(2, 4, 8, 8), torch.tensor([3., 700.]),
                             torch.tensor([1, 2]))),
    'CLIPTextTransformer': (
        lambda **kw: CLIPTextTransformer(embed_dims=32, proj_dims=16, num_layers=2, num_heads=2,
                                         context_length=8, vocab_size=50, **kw),
        lambda m: m(torch.tensor([[1, 5, 7, 49, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 49]]))),
    'VQGANTokenizer': (_tiny_vqgan, lambda m: _vqgan_forward(m, torch.rand(2, 3, 16, 16))),
}


def _train_step(build, forward, with_cp):
    """Outputs, gradients and the number of tensors autograd saved in one training step."""
    torch.manual_seed(0)
    model = build(with_cp=with_cp).train()
    saved = []
    torch.manual_seed(1)  # masks, label dropout
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(1) or t, lambda t: t):
        out = forward(model)
    outs = [o for o in (out if isinstance(out, (tuple, list)) else [out])]
    sum((o.float() ** 2).mean() for o in outs).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return [o.detach() for o in outs], grads, len(saved)


@pytest.mark.parametrize('family', list(FAMILIES))
def test_with_cp_gives_the_same_outputs_and_gradients(family):
    build, forward = FAMILIES[family]
    outs, grads, saved = _train_step(build, forward, with_cp=False)
    outs_cp, grads_cp, saved_cp = _train_step(build, forward, with_cp=True)
    assert len(outs) == len(outs_cp) and all(torch.equal(a, b) for a, b in zip(outs, outs_cp))
    assert grads.keys() == grads_cp.keys() and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads_cp[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    # the blocks' activations are recomputed in the backward pass, not kept
    assert saved_cp < saved, (saved_cp, saved)


def test_checkpoint_call_only_when_enabled_and_grad_is_needed():
    calls = []

    def fn(x, scale, shift=0.):
        calls.append(x.shape)
        return x * x * scale + shift  # autograd keeps x for the backward of x * x

    x = torch.ones(3, requires_grad=True)
    y = checkpoint_call(fn, x, 2., shift=1., enabled=True)
    assert torch.equal(y, torch.full((3, ), 3.)) and len(calls) == 1
    y.sum().backward()  # the forward runs again to rebuild what was not kept
    assert len(calls) == 2 and torch.equal(x.grad, torch.full((3, ), 4.))
    calls.clear()
    checkpoint_call(fn, x, 2., enabled=False).sum().backward()
    checkpoint_call(fn, torch.ones(3), 2., enabled=True)  # nothing needs a gradient
    assert len(calls) == 2  # once each: neither was checkpointed
