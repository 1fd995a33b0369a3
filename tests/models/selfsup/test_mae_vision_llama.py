"""MAE with a VisionLLaMA encoder, as in the official mmpretrain fork: learning on real images, no
leak of masked pixels, visible tokens at their original positions (against an independent
functional reference of the fork's masked forward, loaded from a fork-layout state dict),
released/LLaMA-rule sizes, and the pre-training, fine-tuning and linear-probe configs."""
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmpretrain.registry import MODELS
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.models.backbones import VisionLLaMA
from visionllama_mm.models.selfsup import MAEVisionLLaMA

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
TINY = dict(embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128)


def _mae(img=32, patch=4):
    model = MODELS.build(dict(
        type='MAE',
        backbone=dict(type='MAEVisionLLaMA', arch=TINY, img_size=img, patch_size=patch,
                      mask_ratio=0.75),
        neck=dict(type='MAEPretrainDecoder', num_patches=(img // patch)**2, patch_size=patch,
                  in_chans=3, embed_dim=64, decoder_embed_dim=64, decoder_depth=2,
                  decoder_num_heads=2, mlp_ratio=4.),
        head=dict(type='MAEPretrainHead', norm_pix=True, patch_size=patch,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        init_cfg=[dict(type='Xavier', layer='Linear', distribution='uniform'),
                  dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)]))
    model.init_weights()
    return model


def _digits(root):
    lines = open(osp.join(root, 'meta', 'train.txt')).read().splitlines()
    imgs = [np.asarray(Image.open(osp.join(root, line.split()[0]))) for line in lines]
    x = torch.from_numpy(np.stack(imgs)).float().div(255.)
    return ((x - 0.34) / 0.4).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def test_pretraining_on_real_digits_reduces_loss(digits_root):
    torch.manual_seed(0)
    data = _digits(digits_root)  # 1797 real 8x8 scans upsampled to 32x32 PNGs
    model = _mae()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is ~3-10x faster than two on a busy 2-core box
    try:
        for _ in range(300):
            loss = model.loss(data[torch.randint(len(data), (32, ))], [])['loss']
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    start, end = np.mean(losses[:10]), np.mean(losses[-20:])
    print(f'MAE reconstruction loss: first 10 steps {start:.3f}, last 20 steps {end:.3f}')
    assert end < 0.6 * start


def test_masked_pixels_do_not_leak():
    torch.manual_seed(0)
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    latent, mask, ids_restore = enc(x)
    assert latent.shape == (2, 1 + 16, 64) and mask.shape == ids_restore.shape == (2, 64)
    assert mask.sum(1).tolist() == [48., 48.]
    # repaint every masked 4x4 patch: the encoder output must not change
    y = x.clone()
    m = mask.view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2).bool()
    y[m.unsqueeze(1).expand_as(y)] = 1e3
    torch.manual_seed(1)
    latent2, mask2, _ = enc(y)
    assert torch.equal(mask, mask2) and torch.allclose(latent, latent2, atol=1e-5)
    # while repainting one visible patch does change it
    n = int((mask[0] == 0).nonzero()[0])
    y[0, :, 4 * (n // 8):4 * (n // 8) + 4, 4 * (n % 8):4 * (n % 8) + 4] = 1e3
    torch.manual_seed(1)
    assert not torch.allclose(enc(y)[0][0], latent[0], atol=1e-3)


def test_visible_rope_rows_are_original_grid_positions():
    """Non-square 6x10 grid: each kept token's cos/sin are those of (x = n mod W, y = n div W),
    computed by hand from the official layout [x w0, y w0, x w1, y w1, ...], w_k = 1e4^(-4k/d)."""
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    torch.manual_seed(3)
    _, _, _, ids_keep = enc.random_masking(torch.zeros(3, 60, 1), 0.75)
    assert ids_keep.shape == (3, 15)
    cos, sin = enc.visible_rope(6, 10, ids_keep)
    assert cos.shape == sin.shape == (3, 15, 16)
    d = 32
    for b, j in [(0, 0), (1, 7), (2, 14)]:
        n = int(ids_keep[b, j])
        x, y = n % 10, n // 10
        ang = torch.tensor([p * 1e4**(-4 * k / d) for k in range(d // 4) for p in (x, y)])
        assert torch.allclose(cos[b, j], ang.cos(), atol=1e-6)
        assert torch.allclose(sin[b, j], ang.sin(), atol=1e-6)


# ---- an independent reference of the fork's masked forward (mae.py:294-405) ----------------------
def _fork_layout_state_dict(img=32, patch=4):
    """A fork-layout MAE state dict made from stock mmpretrain modules: ``MAEViT`` (cls_token,
    frozen pos_embed, patch_embed.projection, layers.i.{ln1, attn.qkv, attn.proj, ln2}, ln1) whose
    FFNs are stock ``SwiGLUFFN(bias=True)`` (what the fork's LLaMAMLP is, after its width rule),
    plus the stock decoder. Random values everywhere, LayerNorm affine included."""
    from mmpretrain.models import MAEPretrainDecoder, MAEViT
    from mmpretrain.models.utils import SwiGLUFFN
    vit = MAEViT(arch=TINY, img_size=img, patch_size=patch)
    for layer in vit.layers:
        layer.ffn = SwiGLUFFN(64, 128, bias=True)
    neck = MAEPretrainDecoder(num_patches=(img // patch)**2, patch_size=patch, in_chans=3,
                              embed_dim=64, decoder_embed_dim=64, decoder_depth=2,
                              decoder_num_heads=2)
    g = torch.Generator().manual_seed(0)
    sd = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    sd.update({f'neck.{k}': v for k, v in neck.state_dict().items()})
    return {k: torch.randn(v.shape, generator=g) * (0.2 if v.dim() > 1 else 1.) + (k.endswith(
        'ln1.weight') or k.endswith('ln2.weight')) for k, v in sd.items()}


def _fork_masked_encoder(sd, x, ids_keep, heads=2, patch=4, compact_positions=False):
    """Patchify, gather kept tokens, complex RoPE from the square grid's table gathered per sample
    with ``ids_keep``, blocks ``x + attn(ln1 x)``, ``x + w3(silu(a) * b)``, cls first, ln1."""
    def p(k):
        return sd['backbone.' + k]

    tok = F.conv2d(x, p('patch_embed.projection.weight'), p('patch_embed.projection.bias'),
                   stride=patch).flatten(2).transpose(1, 2)
    B, N, C = tok.shape
    hd, side = C // heads, int(math.isqrt(N))
    tok = torch.gather(tok, 1, ids_keep[..., None].expand(-1, -1, C))
    n = torch.arange(N)
    xs, ys = (n % side).float(), (n // side).float()
    freqs = 1.0 / 10000**(torch.arange(0, hd, 4).float() / hd)
    ang = torch.stack([torch.outer(xs, freqs), torch.outer(ys, freqs)], -1).flatten(1)
    cis = torch.polar(torch.ones_like(ang), ang)  # (N, hd/2) complex
    cis = cis[:ids_keep.shape[1]].expand(B, -1, -1) if compact_positions else cis[ids_keep]

    def rot(t):  # (B, n, heads, hd)
        tc = torch.view_as_complex(t.float().reshape(*t.shape[:-1], -1, 2))
        return torch.view_as_real(tc * cis[:, :, None]).flatten(3)

    i = 0
    while f'backbone.layers.{i}.ln1.weight' in sd:
        def q(k):
            return p(f'layers.{i}.{k}')

        h = F.layer_norm(tok, (C, ), q('ln1.weight'), q('ln1.bias'), 1e-6)
        qq, kk, vv = F.linear(h, q('attn.qkv.weight'), q('attn.qkv.bias')).reshape(
            B, -1, 3, heads, hd).unbind(2)
        qq, kk, vv = (t.transpose(1, 2) for t in (rot(qq), rot(kk), vv))
        a = torch.softmax(qq @ kk.transpose(-2, -1) * hd**-0.5, -1) @ vv
        tok = tok + F.linear(a.transpose(1, 2).reshape(B, -1, C), q('attn.proj.weight'),
                             q('attn.proj.bias'))
        h = F.layer_norm(tok, (C, ), q('ln2.weight'), q('ln2.bias'), 1e-6)
        gate, up = F.linear(h, q('ffn.w12.weight'), q('ffn.w12.bias')).chunk(2, -1)
        tok = tok + F.linear(F.silu(gate) * up, q('ffn.w3.weight'), q('ffn.w3.bias'))
        i += 1
    tok = torch.cat([p('cls_token').expand(B, -1, -1), tok], 1)
    return F.layer_norm(tok, (C, ), p('ln1.weight'), p('ln1.bias'), 1e-6)


def test_fork_checkpoint_loads_strictly_and_matches_the_fork_forward():
    from visionllama_mm.converters import convert_state_dict
    fork = _fork_layout_state_dict()
    kind, converted = convert_state_dict({'state_dict': fork, 'meta': {}})
    assert kind == 'mmpretrain-fork' and 'backbone.pos_embed' not in converted
    model = _mae()
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected

    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(5)
    latent, mask, ids_restore = model.backbone(x)
    ids_keep = torch.argsort(ids_restore, dim=1)[:, :16]
    assert torch.equal(mask.gather(1, ids_keep), torch.zeros(2, 16))
    ref = _fork_masked_encoder(fork, x, ids_keep)
    assert (latent - ref).abs().max() < 1e-4
    # the check is sensitive to positions: renumbering the kept tokens 0..15 gives another output
    wrong = _fork_masked_encoder(fork, x, ids_keep, compact_positions=True)
    assert (latent - wrong).abs().max() > 1e-2
    # and the stock decoder/head run on it: same loss as from the reference latent
    pred = model.neck(latent, ids_restore)
    assert torch.allclose(model.head.loss(pred, x, mask),
                          model.head.loss(model.neck(ref, ids_restore), x, mask), atol=1e-5)


def test_unmasked_forward_is_the_plain_backbone():
    torch.manual_seed(0)
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4, out_type='featmap')
    plain = VisionLLaMA(arch=TINY, img_size=32, patch_size=4, out_type='featmap', ffn_bias=True,
                        with_cls_token=True)
    plain.load_state_dict(enc.state_dict(), strict=True)
    x = torch.randn(1, 3, 48, 64)  # another size, not square: the fork's table keeps img_size
    out, out_none = enc(x, mask=False), enc(x, mask=None)
    assert out[0].shape == (1, 64, 12, 16)
    assert torch.equal(out[0], out_none[0]) and torch.allclose(out[0], plain(x)[0], atol=1e-6)


def test_init_follows_the_fork():
    torch.manual_seed(0)
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4)
    enc.init_weights()
    qkv = enc.layers[0].attn.qkv
    bound = math.sqrt(6 / (64 + 192))  # Xavier-uniform, not trunc-normal 0.02
    assert qkv.weight.abs().max() <= bound and qkv.weight.std() > 0.8 * bound / math.sqrt(3)
    assert torch.count_nonzero(qkv.bias) == 0
    b12 = enc.layers[0].ffn.w12.bias
    assert 0 < b12.abs().max() < 1e-5  # FFN biases N(0, 1e-6)
    assert abs(enc.cls_token.std().item() - 0.02) < 0.01


@pytest.mark.parametrize('arch,expected', [('mae-base', 255_676_416), ('base', 85_659_648),
                                           ('mae-large', 913_801_216)])
def test_encoder_sizes(arch, expected):
    with torch.device('meta'):
        enc = MAEVisionLLaMA(arch=arch)
    assert sum(p.numel() for p in enc.parameters()) == expected
    # released width = the fork's round_up(int(feedforward_channels * 8/3), 256) of 3072 / 4096
    vit_ffc = {'mae-base': 3072, 'mae-large': 4096}.get(arch)
    if vit_ffc:
        assert enc.layers[0].ffn.hidden_dims == -(-int(vit_ffc * 8 / 3) // 256) * 256


# ---- configs ----------------------------------------------------------------------------------
def _cfg(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'visionllama', name))
    assert cfg.custom_imports == dict(imports=['visionllama_mm'], allow_failed_imports=False)
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(field) is not None:
            assert cfg[field].collate_fn == dict(type='default_collate'), field
    return cfg


def _params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('name,arch,enc_params,batch,epochs', [
    ('mae_visionllama-base-p16_8xb512-amp-coslr-800e_in1k.py', 'mae-base', 255_676_416, 512, 800),
    ('mae_visionllama-base-p16_8xb512-amp-coslr-1600e_in1k.py', 'mae-base', 255_676_416, 512,
     1600),
    ('mae_visionllama-large-p16_8xb256-amp-coslr-800e_in1k.py', 'mae-large', 913_801_216, 256,
     800),
])
def test_pretrain_configs(name, arch, enc_params, batch, epochs):
    cfg = _cfg(name)
    assert cfg.model.type == 'MAE' and cfg.model.backbone.arch == arch
    assert cfg.model.backbone.mask_ratio == 0.75 and cfg.model.head.norm_pix
    assert cfg.train_dataloader.batch_size == batch and cfg.train_cfg.max_epochs == epochs
    opt = cfg.optim_wrapper
    assert opt.type == 'AmpOptimWrapper' and opt.optimizer.lr == pytest.approx(2.4e-3)
    assert opt.optimizer.betas == (0.9, 0.95) and opt.optimizer.weight_decay == 0.05
    assert cfg.param_scheduler[-1].end == epochs
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert _params(model.backbone) == enc_params
    # stock 512-d x 8 decoder: 26.01M trainable + its frozen sin-cos table (197 x 512)
    assert _params(model.neck) - model.neck.decoder_pos_embed.numel() == (
        26_008_320 if arch == 'mae-base' else 26_139_392)


def test_finetune_config_and_layer_decay():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    cfg = _cfg('visionllama-base-p16_mae-800e-pre_8xb128-coslr-100e_in1k.py')
    bb = cfg.model.backbone
    assert (bb.out_type, bb.with_cls_token, bb.final_norm) == ('avg_featmap', False, False)
    assert bb.drop_path_rate == 0.1 and bb.ffn_drop_path is False and bb.ffn_bias
    assert cfg.optim_wrapper.optimizer.lr == 2e-3
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.45
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert _params(model.backbone) == 255_676_416 - 768  # no class token; ln2 replaces ln1
    # layer decay through mmpretrain's constructor and our get_layer_depth, on a 2-block model
    init_default_scope('mmpretrain')
    cfg.model.backbone.update(arch=dict(TINY, num_layers=2), init_cfg=None)
    cfg.model.head.in_channels = 64
    model = MODELS.build(cfg.model)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'  # fp16 AMP as the official --amp
    cfg.optim_wrapper.type = 'OptimWrapper'  # mmengine's AMP wrapper needs a GPU
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    got = {g['param_name']: (g['lr'], g['weight_decay']) for g in groups}
    lr, d = 2e-3, 0.45
    assert got['backbone.patch_embed.projection.weight'] == pytest.approx((lr * d**3, 0.05))
    assert got['backbone.layers.0.attn.qkv.weight'] == pytest.approx((lr * d**2, 0.05))
    assert got['backbone.layers.1.ffn.w12.bias'] == pytest.approx((lr * d, 0.))
    assert got['backbone.layers.1.ln1.weight'] == pytest.approx((lr * d, 0.))
    assert got['backbone.ln2.weight'] == pytest.approx((lr, 0.))
    assert got['head.fc.weight'] == pytest.approx((lr, 0.05))


def test_large_finetune_config():
    cfg = _cfg('visionllama-large-p16_mae-800e-pre_8xb64-accum2-coslr-50e_in1k.py')
    assert cfg.model.backbone.arch == 'mae-large'
    assert VisionLLaMA.arch_zoo['mae-large']['feedforward_channels'] == 11008
    assert cfg.model.backbone.drop_path_rate == 0.2
    assert cfg.optim_wrapper.optimizer.lr == 4e-3 and cfg.optim_wrapper.accumulative_counts == 2
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.45
    assert cfg.train_cfg.max_epochs == 50 and cfg.train_dataloader.batch_size == 64
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert _params(model.backbone) == 913_801_216 - 1024


def test_linear_probe_config():
    cfg = _cfg('visionllama-base-p16_mae-800e-pre_8xb2048-linear-coslr-90e_in1k.py')
    assert cfg.optim_wrapper.optimizer.type == 'LARS' and cfg.optim_wrapper.optimizer.lr == 6.4
    assert cfg.train_dataloader.batch_size == 2048 and cfg.train_cfg.max_epochs == 90
    assert cfg.model.backbone.frozen_stages == 12 and cfg.model.backbone.out_type == 'avg_featmap'
    with torch.device('meta'):
        MODELS.build(cfg.model)
    # GAP -> frozen, untrained ln2 -> BN without affine -> FC; only the head learns
    cfg.model.backbone.update(arch=dict(TINY, num_layers=2), frozen_stages=2, init_cfg=None)
    cfg.model.neck.input_features = cfg.model.head.in_channels = 64
    model = MODELS.build(cfg.model)
    model.train()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ['head.layers.head.weight', 'head.layers.head.bias']
    assert not model.backbone.ln2.training and model.neck.bn.affine is False


@pytest.mark.parametrize('name', ['visionllama-base-p16_mae-800e-pre_8xb128-coslr-100e_in1k.py',
                                  'visionllama-base-p16_mae-800e-pre_8xb2048-linear-coslr-90e_in1k.py'])
def test_pretrained_encoder_loads_into_downstream_configs(name, tmp_path):
    """A (tiny) MAE checkpoint initialises the fine-tuning / linear-probe backbone through the
    configs' own ``init_cfg``; only the class token and the pre-training final norm are left out."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    mae = _mae()
    ckpt = str(tmp_path / 'mae.pth')
    torch.save({'state_dict': mae.state_dict(), 'meta': {}}, ckpt)
    cfg = _cfg(name)
    cfg.model.backbone.update(arch=TINY, img_size=32, patch_size=4,
                              init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.'))
    if cfg.model.backbone.get('frozen_stages', -1) > 0:
        cfg.model.backbone.frozen_stages = 4
        cfg.model.neck.input_features = 64
    cfg.model.head.in_channels = 64
    model = MODELS.build(cfg.model)
    model.init_weights()
    mine, theirs = model.backbone.state_dict(), mae.backbone.state_dict()
    assert set(theirs) - set(mine) == {'cls_token', 'ln1.weight', 'ln1.bias'}
    assert set(mine) - set(theirs) == {'ln2.weight', 'ln2.bias'}
    assert all(torch.equal(mine[k], theirs[k]) for k in mine if k in theirs)


def test_mae_loss_compiles_without_graph_breaks_or_recompiles():
    """The pre-training loss (per-sample random masking, visible-token RoPE rows, decoder, pixel
    loss) is one graph with fixed shapes: no recompilation over 3 steps of new masks."""
    from ...compile_checks import assert_one_graph_no_recompile
    torch.manual_seed(0)
    model = _mae().train()

    def step(x):
        return model.loss(x, None)['loss']

    assert_one_graph_no_recompile(step, [(torch.randn(2, 3, 32, 32), ) for _ in range(3)],
                                  backward=True)


def test_mask_ratio_that_keeps_no_token_is_refused():
    """At construction for img_size, at the first batch for another input size."""
    with pytest.raises(ValueError) as err:
        MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=16, mask_ratio=0.8)
    assert str(err.value) == ('MAEVisionLLaMA: mask_ratio=0.8 keeps 0 of the 4 patch tokens (2x2) '
                              'at img_size=(32, 32), so no token is visible; choose a ratio in '
                              '(0, 0.75].')
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4, mask_ratio=0.9)  # keeps 6 of 64
    with pytest.raises(ValueError, match=re.escape(
            'keeps 0 of the 4 patch tokens (2x2) at an input of 8x8, so no token is visible')):
        enc(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=re.escape('mask_ratio must be in (0, 1), got 0.0')):
        MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4, mask_ratio=0.0)
