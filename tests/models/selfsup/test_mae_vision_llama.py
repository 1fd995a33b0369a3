"""MAE with a VisionLLaMA encoder: learning on real images, no leak, original positions, sizes."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.models.selfsup import MAEVisionLLaMA

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
    data = _digits(digits_root)
    model = _mae()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    losses = []
    for step in range(300):
        idx = torch.randint(len(data), (64, ))
        loss = model.loss(data[idx], [])['loss']
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    start, end = np.mean(losses[:10]), np.mean(losses[-20:])
    print(f'MAE reconstruction loss: first 10 steps {start:.3f}, last 20 steps {end:.3f}')
    assert end < 0.6 * start


def test_masked_pixels_do_not_leak_and_positions_are_original():
    torch.manual_seed(0)
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    latent, mask, ids_restore = enc(x)
    assert latent.shape == (2, 1 + 16, 64) and mask.shape == (2, 64)
    assert mask.sum(1).tolist() == [48., 48.]
    # repaint every masked 4x4 patch: the encoder output must not change
    y = x.clone()
    m = mask.view(2, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2).bool()
    y[m.unsqueeze(1).expand_as(y)] = 1e3
    torch.manual_seed(1)
    latent2, mask2, _ = enc(y)
    assert torch.equal(mask, mask2) and torch.allclose(latent, latent2, atol=1e-5)
    # the visible tokens carry their original positions: equal to running the kept tokens with the
    # rows of the full 8x8 table at their grid indices
    torch.manual_seed(1)
    _, _, _, ids_keep = enc.random_masking(torch.zeros(2, 64, 1), 0.75)
    cos, sin = enc.visible_rope(8, 8, ids_keep)
    full_cos, full_sin = enc.rope(8, 8)
    n = ids_keep[1, 3].item()
    assert torch.equal(cos[1, 3], full_cos[n]) and torch.equal(sin[1, 3], full_sin[n])
    ref = enc.rope.table(torch.tensor([[n % 8, n // 8]], dtype=torch.float32))
    assert torch.allclose(cos[1, 3], ref[0][0])


def test_unmasked_forward_is_the_plain_backbone():
    enc = MAEVisionLLaMA(arch=TINY, img_size=32, patch_size=4, out_type='featmap',
                         with_cls_token=True)
    out = enc(torch.randn(1, 3, 48, 64), mask=None)  # any size (spec Q8 fixed)
    assert out[0].shape == (1, 64, 12, 16)


@pytest.mark.parametrize('arch,expected', [('mae-base', 255_676_416), ('base', 85_659_648),
                                           ('mae-large', 913_801_216)])
def test_encoder_sizes(arch, expected):
    with torch.device('meta'):
        enc = MAEVisionLLaMA(arch=arch)
    assert sum(p.numel() for p in enc.parameters()) == expected


def test_fork_checkpoint_converts_and_loads_strictly(tmp_path):
    from visionllama_mm.converters import convert_state_dict
    model = _mae()
    fork = {k: v for k, v in model.state_dict().items()}
    fork['backbone.pos_embed'] = torch.zeros(1, 65, 64)  # the fork's frozen, unused parameter
    kind, converted = convert_state_dict({'state_dict': fork, 'meta': {}})
    assert kind == 'mmpretrain-fork'
    missing, unexpected = _mae().load_state_dict(converted, strict=True)
    assert not missing and not unexpected
