"""Plain VisionLLaMA: the released sizes, shapes, outputs, checkpointing, errors."""
import pytest
import torch
from mmpretrain.models import ImageClassifier  # noqa: F401  (registers the classifier)
from mmpretrain.registry import MODELS

from visionllama_mm.models.backbones import VisionLLaMA


def _classifier(arch, embed):
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='VisionLLaMA', arch=arch, layer_scale_init_value=1e-4),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=embed)))


@pytest.mark.parametrize('arch,embed,expected', [
    ('small', 384, 21_961_192),
    ('base', 768, 86_388_712),
    ('large', 1024, 310_342_632),
])
def test_param_counts_match_official(arch, embed, expected):
    model = _classifier(arch, embed)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_arch_aliases_and_swiglu_width():
    assert VisionLLaMA(arch='s').layers[0].ffn.hidden_dims == 1024
    assert VisionLLaMA(arch='b').layers[0].ffn.hidden_dims == 2048
    assert VisionLLaMA(arch='l').arch_settings['feedforward_channels'] == 2816


@pytest.fixture(scope='module')
def small():
    torch.manual_seed(0)
    m = VisionLLaMA(arch='small', out_type='featmap', layer_scale_init_value=1e-4,
                    auto_scale=True)
    m.init_weights()
    return m.eval()


@pytest.mark.parametrize('size', [(224, 224), (448, 448), (224, 320), (160, 96)])
def test_forward_sizes(small, size):
    with torch.no_grad():
        out = small(torch.randn(1, 3, *size))
    assert out[0].shape == (1, 384, size[0] // 16, size[1] // 16)
    assert torch.isfinite(out[0]).all()


def test_output_types():
    x = torch.randn(2, 3, 64, 96)
    tiny = dict(embed_dims=64, num_layers=3, num_heads=2, feedforward_channels=128)
    shapes = {
        'cls_token': (2, 64),
        'avg_featmap': (2, 64),
        'featmap': (2, 64, 4, 6),
        'raw': (2, 1 + 24, 64),
    }
    for out_type, shape in shapes.items():
        m = VisionLLaMA(arch=tiny, out_type=out_type, out_indices=(0, -1))
        outs = m(x)
        assert len(outs) == 2 and all(o.shape == shape for o in outs), out_type
    m = VisionLLaMA(arch=tiny, out_type='featmap', with_cls_token=False)
    assert m(x)[0].shape == (2, 64, 4, 6)


def test_class_token_rope_positions():
    tiny = dict(embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=128)
    official = VisionLLaMA(arch=tiny, cls_token_pos='official')
    cos, sin = official.rope_table(3, 4)
    ref = official.rope.table(torch.tensor([[3., -1.]]))  # x = W-1, y = -1
    assert torch.allclose(cos[0], ref[0][0]) and torch.allclose(sin[0], ref[1][0])
    legacy = VisionLLaMA(arch=tiny, cls_token_pos='legacy')
    cos, _ = legacy.rope_table(3, 4)
    assert torch.allclose(cos[0], cos[1 + 3])  # shares the top-right patch (x=3, y=0)
    none = VisionLLaMA(arch=tiny, cls_token_pos='none')
    cos, sin = none.rope_table(3, 4)
    assert torch.all(cos[0] == 1) and torch.all(sin[0] == 0) and cos.shape[0] == 13


def test_with_cp_gives_same_gradients():
    tiny = dict(embed_dims=64, num_layers=3, num_heads=2, feedforward_channels=128)
    torch.manual_seed(0)
    a = VisionLLaMA(arch=tiny, out_type='avg_featmap', drop_path_rate=0.0)
    b = VisionLLaMA(arch=tiny, out_type='avg_featmap', drop_path_rate=0.0, with_cp=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 48)
    a(x)[0].pow(2).sum().backward()
    b(x)[0].pow(2).sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6), name


def test_bf16_autocast_forward_backward():
    tiny = dict(embed_dims=64, num_layers=2, num_heads=2, feedforward_channels=128)
    m = VisionLLaMA(arch=tiny, out_type='avg_featmap')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = m(torch.randn(2, 3, 32, 32))[0]
    out.float().sum().backward()
    assert torch.isfinite(m.patch_embed.projection.weight.grad).all()


def test_bad_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown arch 'huge'; valid names: b, base, l, large, "
                       "mae-b, mae-base, mae-l, mae-large, s, small"):
        VisionLLaMA(arch='huge')
    with pytest.raises(ValueError, match='custom arch must be a dict'):
        VisionLLaMA(arch=dict(embed_dims=64))


def test_input_not_divisible_by_patch_is_a_clear_error():
    m = VisionLLaMA(arch=dict(embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=64))
    with pytest.raises(ValueError, match='230x224 is not divisible by the patch size 16'):
        m(torch.randn(1, 3, 230, 224))


def test_layer_depth_for_layer_decay():
    m = VisionLLaMA(arch='small')
    assert m.get_layer_depth('backbone.patch_embed.projection.weight', 'backbone.') == (0, 14)
    assert m.get_layer_depth('backbone.cls_token', 'backbone.') == (0, 14)
    assert m.get_layer_depth('backbone.layers.0.attn.qkv.weight', 'backbone.') == (1, 14)
    assert m.get_layer_depth('backbone.layers.11.ffn.w3.weight', 'backbone.') == (12, 14)
    assert m.get_layer_depth('backbone.ln1.weight', 'backbone.') == (13, 14)
    assert m.get_layer_depth('head.fc.weight', 'backbone.') == (13, 14)


def test_frozen_stages():
    m = VisionLLaMA(arch=dict(embed_dims=64, num_layers=3, num_heads=2, feedforward_channels=64),
                    frozen_stages=2)
    m.train()
    assert not m.patch_embed.projection.weight.requires_grad
    assert not any(p.requires_grad for p in m.layers[1].parameters())
    assert all(p.requires_grad for p in m.layers[2].parameters())


def test_windowed_blocks_vitdet():
    tiny = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)
    torch.manual_seed(0)
    glob = VisionLLaMA(arch=tiny, with_cls_token=False, out_type='featmap', auto_scale=True,
                       img_size=64)
    win = VisionLLaMA(arch=tiny, with_cls_token=False, out_type='featmap', window_size=4,
                      global_attn_indexes=[1, 3], auto_scale=True, img_size=64)
    win.load_state_dict(glob.state_dict())
    assert [blk.window_size for blk in win.layers] == [4, 0, 4, 0]
    x = torch.randn(1, 3, 64, 64)  # 4x4 tokens = one window: windowed == global
    assert torch.allclose(glob(x)[0], win(x)[0], atol=1e-5)
    # 5x6 tokens: windows pad to 8x8 and the result differs from global attention
    y = torch.randn(2, 3, 80, 96)
    out = win(y)[0]
    assert out.shape == (2, 64, 5, 6) and not torch.allclose(out, glob(y)[0], atol=1e-3)
    with pytest.raises(ValueError, match='with_cls_token=False'):
        VisionLLaMA(arch=tiny, window_size=4)


def test_inference_mode_forward_does_not_break_the_next_training_step():
    """An unrotated class token row built under inference_mode must not leak into training."""
    tiny = dict(embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=64)
    m = VisionLLaMA(arch=tiny, cls_token_pos='none')
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        m.eval()
        m(x)
    m.train()
    m(x)[0].sum().backward()  # failed with "Inference tensors cannot be saved for backward"
    assert m.cls_token.grad is not None


def test_mae_arch_names_are_plain_arch_names():
    with torch.device('meta'):
        m = VisionLLaMA(arch='mae-base', ffn_bias=True)
    assert m.layers[0].ffn.hidden_dims == 8192
    assert VisionLLaMA.arch_zoo['mae-large']['feedforward_channels'] == 11008


def test_dense_featmap_pads_inputs_not_divisible_by_the_patch():
    tiny = dict(embed_dims=64, num_layers=1, num_heads=2, feedforward_channels=64)
    m = VisionLLaMA(arch=tiny, with_cls_token=False, out_type='featmap').eval()
    x = torch.randn(1, 3, 36, 50)
    out = m(x)[0]
    assert out.shape == (1, 64, 3, 4)  # ceil(36/16) x ceil(50/16)
    padded = torch.nn.functional.pad(x, (0, 14, 0, 12))
    assert torch.allclose(out, m(padded)[0], atol=1e-6)  # zero padding, right and bottom


TINY_COMPILE = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


@pytest.mark.parametrize('kwargs,size', [
    (dict(), 32),  # class token, AS2DRoPE
    (dict(with_cls_token=False, out_type='featmap', window_size=3, global_attn_indexes=[1]), 40),
    (dict(with_cp=True, out_type='avg_featmap'), 32),
])
def test_training_forward_compiles_without_graph_breaks_or_recompiles(kwargs, size):
    """One graph for the training forward (drop path and LayerScale on; ViTDet windows that pad
    5x5 tokens to 6x6; activation checkpointing), and no recompilation over 3 steps."""
    from ...compile_checks import assert_one_graph_no_recompile
    torch.manual_seed(0)
    m = VisionLLaMA(arch=TINY_COMPILE, img_size=size, patch_size=8, auto_scale=True,
                    drop_path_rate=0.1, layer_scale_init_value=1e-4, **kwargs).train()

    def step(x):
        return m(x)[-1].float().mean()

    assert_one_graph_no_recompile(step, [(torch.randn(2, 3, size, size), ) for _ in range(3)],
                                  backward=True)


@pytest.mark.parametrize('dtype,tol', [(torch.float16, 5e-3), (torch.bfloat16, 3e-2)])
def test_half_precision_autocast_with_large_activations_and_grid(dtype, tol):
    """fp16 / bf16 autocast on a 64x64 token grid (ViTDet's 1024 px / 16) with a residual stream
    of hundreds: outputs and gradients (of a loss scaled as the AMP loss scaler does) finite and
    close to fp32 (relative L2 error)."""
    torch.manual_seed(0)
    m = VisionLLaMA(arch=TINY_COMPILE, img_size=256, patch_size=4, out_type='featmap',
                    with_cls_token=False, auto_scale=True, layer_scale_init_value=1.)
    with torch.no_grad():
        m.patch_embed.projection.weight.mul_(100.)  # tokens of magnitude ~hundreds
    x = torch.randn(1, 3, 256, 256)
    probe = torch.randn(1, 32, 64, 64)  # a loss whose gradient reaches every weight
    weight = m.layers[0].attn.qkv.weight

    def run(autocast):
        m.zero_grad()
        with torch.autocast('cpu', dtype=dtype, enabled=autocast):
            tokens = m.patch_embed(x)[0]
            out = m(x)[0]
        # fp16 training scales the loss (AmpOptimWrapper's dynamic scaler starts at 2**16)
        ((out.float() * probe).mean() * 2.**16).backward()
        return tokens, out.float(), weight.grad / 2.**16

    tokens, ref, ref_grad = run(False)
    assert tokens.abs().max() > 100
    _, out, grad = run(True)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    assert (out - ref).norm() / ref.norm() < tol
    assert (grad - ref_grad).norm() / ref_grad.norm() < 4 * tol
