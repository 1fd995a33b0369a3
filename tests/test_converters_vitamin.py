"""ViTamin checkpoint converters: timm ``vitamin_*`` state dicts -> ``ImageClassifier``, OpenCLIP
ViTamin CLIP checkpoints -> ``ContrastiveCLIP``, checked against timm and open_clip themselves
(randomly initialised, every parameter randomised so that no swapped LayerNorm or bias can hide
behind its (1, 0) init), plus format detection.

The timm small model goes through ``tools/model_converters/vitamin_official.py`` as a
subprocess; the round trip and the refusals run that script in-process (``runpy``); the other
models convert in-process with ``convert_state_dict``, the code path the script calls.
"""
import math
import runpy
import sys

import open_clip
import pytest
import timm
import torch

import visionllama_mm  # noqa: F401
from visionllama_mm.converters import AlreadyConvertedError, convert_state_dict, detect_kind
from .conftest import REPO, run_tool

TOOL = 'tools/model_converters/vitamin_official.py'
# arch -> (timm name, D, OpenCLIP name, (E, text width, text heads))
ARCHS = {'small': ('vitamin_small_224', 384, 'ViTamin-S', (384, 384, 6)),
         'base': ('vitamin_base_224', 768, 'ViTamin-B', (512, 512, 8))}
LOGIT_SCALE = math.log(30.)  # not OpenCLIP's init ln(1 / 0.07), so that copying it is visible
TEXTS = ['a photo of a cat.', 'A diagram of ViTamin (CVPR 2024)!!  ', '', 'x' * 300]


def _randomise(model, seed=0):
    """Every parameter random, of a scale that keeps the activations O(1): LayerNorms (1 + .2n,
    .1n), matrices and kernels n / sqrt(fan in), the rest (biases, position tables) .1n."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if name == 'logit_scale':
                p.fill_(LOGIT_SCALE)
            elif p.dim() == 1 and ('norm' in name or 'ln_' in name):
                p.copy_(1 + .2 * noise if name.endswith('weight') else .1 * noise)
            elif p.dim() >= 2 and not name.endswith(('pos_embed', 'positional_embedding')):
                p.copy_(noise * p[0].numel() ** -.5)
            else:
                p.copy_(.1 * noise)
    return model.eval()


def _timm_model(arch, **kwargs):
    torch.manual_seed(0)
    return _randomise(timm.create_model(ARCHS[arch][0], num_classes=10, **kwargs))


def _open_clip_model(arch):
    torch.manual_seed(0)
    return _randomise(open_clip.create_model(ARCHS[arch][2], pretrained=None))


def _classifier(arch, **backbone):
    from mmpretrain.registry import MODELS
    return MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='ViTamin', arch=arch, **backbone),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=ARCHS[arch][1]))).eval()


def _clip(arch):
    from mmpretrain.registry import MODELS
    embed, width, heads = ARCHS[arch][3]
    return MODELS.build(dict(
        type='ContrastiveCLIP', vision_backbone=dict(type='ViTamin', arch=arch),
        text_encoder=dict(type='CLIPTextTransformer', embed_dims=width, proj_dims=embed,
                          num_layers=12, num_heads=heads, context_length=77, vocab_size=49408,
                          act='gelu'))).eval()


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _tool(argv, capsys):
    """The CLI in-process (``runpy``) -> (exit message or None, stdout)."""
    old = sys.argv
    sys.argv = [TOOL] + [str(a) for a in argv]
    try:
        runpy.run_path(f'{REPO}/{TOOL}', run_name='__main__')
        code = None
    except SystemExit as exit_:
        code = str(exit_.code)
    finally:
        sys.argv = old
    return code, capsys.readouterr().out


@pytest.fixture(scope='module')
def timm_small():
    return _timm_model('small')


@pytest.fixture(scope='module')
def open_clip_small():
    return _open_clip_model('small')


# ---------------------------------------------------------------------------------------------
# timm


def _timm_parity(arch, ref, state_dict, batch):
    """``state_dict`` (converted) in our classifier vs timm ``ref`` at 224, then both rebuilt for
    256: ours loading the 224 weights (position embedding resized on load), timm's through its
    own ``checkpoint_filter_fn``."""
    from timm.models.vitamin import checkpoint_filter_fn
    diffs = {}
    for size in (224, 256):
        if size == 224:
            theirs = ref
        else:
            theirs = timm.create_model(ARCHS[arch][0], num_classes=10, img_size=256).eval()
            theirs.load_state_dict(checkpoint_filter_fn(ref.state_dict(), theirs))
        ours = _classifier(arch, img_size=size)
        missing, unexpected = ours.load_state_dict(state_dict, strict=True)
        assert not missing and not unexpected
        if size == 256:
            assert ours.backbone.pos_embed.shape == theirs.pos_embed.shape
            assert theirs.pos_embed.shape[1] == 256
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out, ref_out = ours(x, mode='tensor'), theirs(x)
        diffs[size] = _max_diff(out, ref_out)
        print(f'timm {ARCHS[arch][0]} @{size}: max |logit diff| {diffs[size]:.3g} '
              f'(logits up to {ref_out.abs().max().item():.3g})')
    assert max(diffs.values()) <= 1e-4, diffs


def test_timm_small_parity_through_the_cli(python, tmp_path, timm_small):
    src, dst = tmp_path / 'vitamin_small_224.pth', tmp_path / 'ours.pth'
    torch.save(timm_small.state_dict(), src)
    out = run_tool([python, TOOL, str(src), str(dst)])
    assert 'detected: timm-vitamin' in out and f'wrote: {dst}' in out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta'] == {'converted_from': src.name, 'source_format': 'timm-vitamin'}
    state_dict = ckpt['state_dict']
    assert torch.equal(state_dict['head.fc.weight'], timm_small.head.weight)
    # w0 (the GELU gate) first, then w1
    w12 = state_dict['backbone.blocks.13.ffn.w12.weight']
    assert torch.equal(w12, torch.cat([timm_small.blocks[13].mlp.w0.weight,
                                       timm_small.blocks[13].mlp.w1.weight]))
    _timm_parity('small', timm_small, state_dict, batch=2)
    with pytest.raises(AlreadyConvertedError, match=r'converted from vitamin_small_224.pth \('
                                                    r'format timm-vitamin\) by this tool'):
        detect_kind(ckpt)


def test_timm_base_parity():
    ref = _timm_model('base')
    kind, state_dict = convert_state_dict(ref.state_dict())
    assert kind == 'timm-vitamin'
    _timm_parity('base', ref, state_dict, batch=1)


def test_timm_places_and_a_headless_model(timm_small):
    """timm's train.py / other trainers' wrappers, and ``num_classes=0`` (no head keys): the
    output is then the backbone alone."""
    sd = timm_small.state_dict()
    for ckpt in ({'state_dict': sd, 'arch': 'vitamin_small_224', 'epoch': 3}, {'model': sd}):
        assert detect_kind(ckpt)[0] == 'timm-vitamin'
    headless = {k: v for k, v in sd.items() if not k.startswith('head.')}
    kind, state_dict = convert_state_dict(headless)
    assert kind == 'timm-vitamin' and all(k.startswith('backbone.') for k in state_dict)
    missing, unexpected = _classifier('small').load_state_dict(state_dict, strict=False)
    assert sorted(missing) == ['head.fc.bias', 'head.fc.weight'] and not unexpected
    with pytest.raises(KeyError, match=r"unexpected head keys \['head.norm.weight'\]"):
        convert_state_dict(dict(sd, **{'head.norm.weight': torch.ones(384)}))


# ---------------------------------------------------------------------------------------------
# OpenCLIP


@pytest.mark.parametrize('arch', ['small', 'base'])
def test_open_clip_parity(request, arch):
    ref = (request.getfixturevalue('open_clip_small') if arch == 'small'
           else _open_clip_model(arch))
    assert type(ref).__name__ == 'CustomTextCLIP'
    assert isinstance(ref.text.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
    kind, state_dict = convert_state_dict(ref.state_dict())
    assert kind == 'open-clip-vitamin'
    assert torch.equal(state_dict['visual_proj.weight'], ref.visual.head.proj.weight)
    ours = _clip(arch)
    missing, unexpected = ours.load_state_dict(state_dict, strict=True)
    assert not missing and not unexpected

    from visionllama_mm.models.multimodal.clip import CLIPTokenizer
    tokens = open_clip.get_tokenizer(ARCHS[arch][2])(TEXTS)
    assert torch.equal(CLIPTokenizer()(TEXTS), tokens)
    x = torch.randn(2 if arch == 'small' else 1, 3, 224, 224,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = _max_diff(ours.extract_image_feat(x), ref.encode_image(x, normalize=True))
        text = _max_diff(ours.extract_text_feat(tokens), ref.encode_text(tokens, normalize=True))
        scale = abs(ours.scale().item() - ref.logit_scale.exp().item())
    print(f'open_clip {ARCHS[arch][2]}: max |diff| image embeddings {image:.3g}, text embeddings '
          f'{text:.3g}, logit scale {scale:.3g} (scale {ours.scale().item():.4g})')
    assert image <= 1e-4 and text <= 1e-4 and scale <= 1e-4 * 30


def _plain_clip_layout(sd):
    """The same weights as a plain (non-custom-text) OpenCLIP ``CLIP`` stores them."""
    return {k[len('text.'):] if k.startswith('text.') else k: v for k, v in sd.items()}


def test_open_clip_released_layouts_and_round_trip(tmp_path, capsys, open_clip_small):
    sd = open_clip_small.state_dict()
    expected = convert_state_dict(sd)[1]
    # a DDP training checkpoint: {'epoch', 'name', 'state_dict' with module. keys, ...}
    src, dst = tmp_path / 'epoch_32.pt', tmp_path / 'ours.pth'
    torch.save({'epoch': 32, 'name': 'vitamin_s', 'state_dict': {f'module.{k}': v
                                                                 for k, v in sd.items()}}, src)
    code, out = _tool([src, dst], capsys)
    assert code is None and 'detected: open-clip-vitamin' in out, (code, out)
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert sorted(converted) == sorted(expected)
    assert all(torch.equal(converted[k], v) for k, v in expected.items())
    # a bare DDP state dict; the plain CLIP layout (text tower at the top level)
    for variant in ({f'module.{k}': v for k, v in sd.items()}, _plain_clip_layout(sd)):
        kind, out_sd = convert_state_dict(variant)
        assert kind == 'open-clip-vitamin' and sorted(out_sd) == sorted(expected)
        assert torch.equal(out_sd['text.blocks.5.attn.qkv.weight'],
                           expected['text.blocks.5.attn.qkv.weight'])
    # the converted file given back to the tool: refused, nothing written
    code, _ = _tool([dst, tmp_path / 'again.pth'], capsys)
    assert code.startswith(f'error: {dst}: already a visionllama_mm checkpoint, no conversion '
                           'needed: converted from epoch_32.pt (format open-clip-vitamin)'), code
    assert not (tmp_path / 'again.pth').exists()


def test_load_text_tower_takes_the_raw_open_clip_file(tmp_path, open_clip_small):
    """LTT's ``text_checkpoint`` given the released ``open_clip_pytorch_model.bin`` as it is."""
    sd = open_clip_small.state_dict()
    path = tmp_path / 'open_clip_pytorch_model.bin'
    torch.save(sd, path)
    model = _clip('small')
    visual_before = model.visual.stem.conv1.weight.clone()
    model.load_text_tower(str(path))
    text = model.text
    block = 'text.transformer.resblocks.'
    for ours, key in [(text.token_embedding.weight, 'text.token_embedding.weight'),
                      (text.positional_embedding, 'text.positional_embedding'),
                      (text.blocks[0].attn.qkv.weight, block + '0.attn.in_proj_weight'),
                      (text.blocks[7].attn.proj.bias, block + '7.attn.out_proj.bias'),
                      (text.blocks[11].ffn.fc2.weight, block + '11.mlp.c_proj.weight'),
                      (text.blocks[3].ln2.weight, block + '3.ln_2.weight'),
                      (text.ln_final.bias, 'text.ln_final.bias'),
                      (text.text_projection, 'text.text_projection'),
                      (model.logit_scale, 'logit_scale')]:
        assert torch.equal(ours.detach(), sd[key]), key
    assert torch.equal(model.visual.stem.conv1.weight, visual_before)  # the image tower untouched
    tokens = open_clip.tokenizer.tokenize(TEXTS[:2])
    with torch.no_grad():
        diff = _max_diff(model.extract_text_feat(tokens),
                         open_clip_small.encode_text(tokens, normalize=True))
    assert diff <= 1e-4, diff


# ---------------------------------------------------------------------------------------------
# detection and refusals


def _tiny_vitamin(**kwargs):
    return dict(type='ViTamin', arch=dict(stem_channels=8, channels=(8, 16), depths=(1, 1),
                                          embed_dims=16, num_layers=1, num_heads=2),
                img_size=32, **kwargs)


def test_own_checkpoints_need_no_conversion(tmp_path, capsys):
    from mmpretrain.registry import MODELS
    clip = MODELS.build(dict(type='ContrastiveCLIP', vision_backbone=_tiny_vitamin(),
                             text_encoder=dict(type='CLIPTextTransformer', embed_dims=16,
                                               num_layers=1, num_heads=2),
                             context_length=8))
    classifier = MODELS.build(dict(type='ImageClassifier', backbone=_tiny_vitamin(),
                                   head=dict(type='LinearClsHead', num_classes=3,
                                             in_channels=16)))
    backbone = MODELS.build(_tiny_vitamin())
    cases = [({'state_dict': clip.state_dict(), 'meta': {'iter': 300}},
              r"its state_dict has this package's ViTamin / CLIP key layout "
              r'\(visual.transition.proj.weight\)'),
             ({'state_dict': classifier.state_dict(), 'meta': {'epoch': 1}},
              r'\(backbone.transition.proj.weight\)'),
             (backbone.state_dict(), r'top-level dict .*\(transition.proj.weight\)')]
    for ckpt, message in cases:
        with pytest.raises(AlreadyConvertedError, match='no conversion needed: .*' + message):
            detect_kind(ckpt)
    # a CLIP checkpoint of this package with another image tower
    other = {'visual_proj.weight': torch.zeros(2, 2), 'logit_scale': torch.zeros(()),
             'text.blocks.0.attn.qkv.weight': torch.zeros(6, 2)}
    with pytest.raises(AlreadyConvertedError, match=r'\(text.blocks.0.attn.qkv.weight\)'):
        detect_kind(other)
    src = tmp_path / 'iter_300.pth'
    torch.save(cases[0][0], src)
    code, _ = _tool([src, tmp_path / 'out.pth'], capsys)
    assert code.startswith(f'error: {src}: already a visionllama_mm checkpoint, no conversion '
                           'needed: its state_dict'), code
    assert not (tmp_path / 'out.pth').exists()


def test_other_families_are_refused_both_ways(tmp_path, capsys):
    """A ConvNeXt V2 or VisionLLaMA checkpoint given to the ViTamin tool, and a ViTamin one given
    to the ConvNeXt V2 tool, are named by family; nothing is written."""
    convnext = tmp_path / 'convnextv2_atto.pth'
    torch.save({'stem.0.weight': torch.zeros(2, 3, 4, 4),
                'stages.0.blocks.0.mlp.grn.weight': torch.zeros(8)}, convnext)
    deit = tmp_path / 'deit.pth'
    torch.save({'model': {'blocks.0.mlp.c_fc1.weight': torch.zeros(4, 2),
                          'blocks.0.attn.qkv.weight': torch.zeros(6, 2)}}, deit)
    for src, message in [(convnext, 'a ConvNeXt V2 checkpoint (format timm-convnextv2), not a '
                                    'ViTamin one; this tool converts timm-vitamin, '
                                    'open-clip-vitamin only'),
                         (deit, 'a VisionLLaMA checkpoint (format deit-plain), not a ViTamin one')]:
        code, _ = _tool([src, tmp_path / 'out.pth'], capsys)
        assert code.startswith(f'error: {src}: {message}'), code
        assert not (tmp_path / 'out.pth').exists()
    vitamin = tmp_path / 'open_clip_pytorch_model.bin'
    torch.save({'logit_scale': torch.zeros(()),
                'visual.trunk.patch_embed.backbone.stem.conv1.weight': torch.zeros(2, 3, 3, 3),
                'visual.trunk.blocks.0.mlp.w0.weight': torch.zeros(4, 2)}, vitamin)
    from visionllama_mm.converters import run_cli
    with pytest.raises(SystemExit, match=r'a ViTamin checkpoint \(format open-clip-vitamin\), not '
                                         r'a ConvNeXt V2 one'):
        run_cli('ConvNeXt V2', '', [str(vitamin), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_every_format_matches_exactly_one_detector(timm_small, open_clip_small):
    """The ViTamin samples beside one checkpoint of every other family's key-detected formats:
    each is taken by its own family's ``detect`` only."""
    from visionllama_mm.converters import family_modules
    from .test_converters_convnextv2 import _matching_formats, _samples
    samples = _samples()
    sd = open_clip_small.state_dict()
    samples.update({'timm-vitamin': timm_small.state_dict(), 'open-clip-vitamin': sd})
    vitamin = next(m for m in family_modules() if m.FAMILY == 'ViTamin')
    assert set(vitamin.FORMATS) <= set(samples)
    ddp = {'state_dict': {f'module.{k}': v for k, v in sd.items()}}
    for expected, ckpt in list(samples.items()) + [('open-clip-vitamin', ddp)]:
        assert _matching_formats(ckpt) == {expected}, expected
        assert detect_kind(ckpt)[0] == expected


def test_open_clip_vit_is_not_a_vitamin():
    """An OpenCLIP ViT (no timm trunk) is unrecognised, the message listing the ViTamin formats."""
    vit = {'logit_scale': torch.zeros(()), 'visual.conv1.weight': torch.zeros(4, 3, 2, 2),
           'visual.transformer.resblocks.0.attn.in_proj_weight': torch.zeros(12, 4),
           'token_embedding.weight': torch.zeros(8, 4)}
    with pytest.raises(ValueError, match=r'unrecognised checkpoint: .*ViTamin: timm-vitamin, '
                                         r'open-clip-vitamin; LVM: '):
        detect_kind(vit)


def test_open_clip_keys_outside_the_vitamin_layout_are_named(open_clip_small):
    """An attention-pool / biased projection / Linear text projection (no ViTamin model has one)
    fails naming the key instead of being dropped."""
    from visionllama_mm.models.multimodal.clip_convert import convert_open_clip_text
    sd = open_clip_small.state_dict()
    for key, message in [('visual.head.proj.bias', "unexpected key 'visual.head.proj.bias'"),
                         ('visual.trunk.attn_pool.q.weight',
                          "unexpected key 'attn_pool.q.weight'"),
                         ('text.text_projection.weight', 'a Linear text projection')]:
        with pytest.raises(KeyError, match=message):
            convert_state_dict(dict(sd, **{key: torch.zeros(2)}))
    with pytest.raises(KeyError, match=r"unsupported key 'text_projection.weight' \(a Linear"):
        convert_open_clip_text({'text_projection.weight': torch.zeros(2, 2)})


# ---------------------------------------------------------------------------------------------
# export: --to timm, --to open_clip


def _tiny_timm(depths=(1, 2), embed_dim=32, depth=2, **kwargs):
    """timm's ``vitamin_*`` at tiny sizes (its own builder, the small model's settings
    overridden)."""
    from timm.models.vitamin import VitCfg, VitConvCfg
    embed_cfg = VitCfg(embed_dim=(8, 16, embed_dim), depths=(*depths, 1), stem_width=8,
                       head_type='1d',
                       conv_cfg=VitConvCfg(norm_layer='layernorm2d', norm_eps=1e-6))
    return timm.create_model('vitamin_small_224', pretrained=False, embed_cfg=embed_cfg,
                             embed_dim=embed_dim, depth=depth, num_heads=2, img_size=32,
                             **kwargs).eval()


def test_export_to_timm_round_trip(tmp_path, capsys):
    """A randomly initialised ImageClassifier of this package -> ``--to timm`` (a .safetensors by
    default) -> timm's own model loads it strictly and gives our logits; converting the export
    back gives our state dict exactly."""
    from mmpretrain.registry import MODELS
    from safetensors.torch import load_file
    arch = dict(stem_channels=8, channels=(8, 16), depths=(1, 2), embed_dims=32, num_layers=2,
                num_heads=2)
    ours = _randomise(MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='ViTamin', arch=arch, img_size=32),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=32))), seed=3)
    src = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': ours.state_dict(), 'meta': {'epoch': 1}}, src)
    code, out = _tool([src, tmp_path / 'timm_vitamin', '--to', 'timm'], capsys)
    dst = tmp_path / 'timm_vitamin.safetensors'
    assert code is None and out == f'exported: ViTamin -> timm\nwrote: {dst}\n', (code, out)
    exported = load_file(str(dst))
    theirs = _tiny_timm(num_classes=10)
    theirs.load_state_dict(exported, strict=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ours(x, mode='tensor'), theirs(x)
    diff = _max_diff(got, want)
    print(f'--to timm: max |logit diff| {diff:.3g} (logits up to {want.abs().max():.3g})')
    assert want.abs().max() > 0.1 and diff <= 1e-4
    back = convert_state_dict(exported)[1]
    assert sorted(back) == sorted(ours.state_dict())
    assert all(torch.equal(back[k], v) for k, v in ours.state_dict().items())


def test_export_to_open_clip_round_trip(tmp_path, capsys, open_clip_small):
    """Our ContrastiveCLIP holding random weights (those of the randomised OpenCLIP ViTamin-S,
    converted) -> ``--to open_clip`` -> exactly OpenCLIP's own state dict; OpenCLIP's
    ``CustomTextCLIP`` loads the file strictly and gives our image and text features and logit
    scale."""
    from safetensors.torch import load_file
    ref = open_clip_small.state_dict()
    ours = _clip('small')
    ours.load_state_dict(convert_state_dict(ref)[1], strict=True)
    src = tmp_path / 'iter_100.pth'
    torch.save({'state_dict': ours.state_dict(), 'meta': {'iter': 100}}, src)
    dst = tmp_path / 'open_clip_vitamin_s.safetensors'
    code, out = _tool([src, dst, '--to', 'open_clip'], capsys)
    assert code is None and out == f'exported: ViTamin -> open_clip\nwrote: {dst}\n', (code, out)
    exported = load_file(str(dst))
    assert sorted(exported) == sorted(ref) and all(torch.equal(exported[k], v)
                                                   for k, v in ref.items())
    theirs = open_clip_small  # the export equals its weights bit for bit (above): loading it
    theirs.load_state_dict(exported, strict=True)  # leaves the shared fixture as it was
    tokens = open_clip.get_tokenizer('ViTamin-S')(TEXTS[:2])
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = _max_diff(theirs.encode_image(x, normalize=True), ours.extract_image_feat(x))
        text = _max_diff(theirs.encode_text(tokens, normalize=True),
                         ours.extract_text_feat(tokens))
    print(f'--to open_clip: max |diff| image features {image:.3g}, text features {text:.3g}')
    assert image <= 1e-4 and text <= 1e-4
    assert theirs.logit_scale.item() == ours.logit_scale.item() == pytest.approx(LOGIT_SCALE)


def test_export_refusals(tmp_path, capsys):
    """--to open_clip of a classifier, a released timm file given to --to, a head timm has no
    counterpart of: one line each, nothing written; a CLIP's image tower goes to a headless timm
    model (strict load, same pooled features)."""
    from mmpretrain.registry import MODELS

    from visionllama_mm.models.backbones.vitamin_convert import from_ours
    classifier = MODELS.build(dict(type='ImageClassifier', backbone=_tiny_vitamin(),
                                   head=dict(type='LinearClsHead', num_classes=3,
                                             in_channels=16)))
    src = tmp_path / 'cls.pth'
    torch.save({'state_dict': classifier.state_dict()}, src)
    code, _ = _tool([src, tmp_path / 'x', '--to', 'open_clip'], capsys)
    assert code == (f'error: {src}: --to open_clip needs a ContrastiveCLIP checkpoint with a '
                    "ViTamin image tower (visual.stem.conv1.weight, ...); first keys: "
                    "['backbone.blocks.0.attn.proj.bias', 'backbone.blocks.0.attn.proj.weight', "
                    "'backbone.blocks.0.attn.qkv.bias', 'backbone.blocks.0.attn.qkv.weight', "
                    "'backbone.blocks.0.ffn.norm.bias', 'backbone.blocks.0.ffn.norm.weight']"), code
    released = tmp_path / 'vitamin_tiny.pth'
    torch.save(_tiny_timm(num_classes=3).state_dict(), released)
    code, _ = _tool([released, tmp_path / 'x', '--to', 'timm'], capsys)
    assert code.startswith(f'error: {released}: a released ViTamin checkpoint (format '
                           'timm-vitamin), not one of this package\'s'), code
    assert not list(tmp_path.glob('x*'))
    with pytest.raises(KeyError, match=r"--to timm: the head has \['head.norm.weight'\]"):
        from_ours(dict(classifier.state_dict(), **{'head.norm.weight': torch.ones(3)}), 'timm')
    clip = MODELS.build(dict(type='ContrastiveCLIP', vision_backbone=_tiny_vitamin(),
                             text_encoder=dict(type='CLIPTextTransformer', embed_dims=16,
                                               num_layers=1, num_heads=2),
                             context_length=8))
    tower = from_ours(clip.state_dict(), 'timm')
    assert not any(k.startswith('head') for k in tower)
    headless = _tiny_timm(depths=(1, 1), embed_dim=16, depth=1, num_classes=0)
    headless.load_state_dict(tower, strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert _max_diff(headless(x), clip.visual(x)[-1]) <= 1e-5
    assert torch.equal(tower['blocks.0.mlp.w1.weight'],
                       clip.visual.blocks[0].ffn.w12.weight[clip.visual.blocks[0].ffn.w12.weight
                                                            .shape[0] // 2:])
