"""PatchEmbed is mmcv's (same keys and outputs) with errors that name the backbone."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import PatchEmbed as MMCVPatchEmbed

from visionllama_mm.models.layers import PatchEmbed


def test_patch_embed_is_mmcvs_with_named_errors():
    torch.manual_seed(0)
    ours = PatchEmbed(3, 8, 4, norm=True, norm_eps=1e-6, owner='PyramidVisionLLaMA')
    assert isinstance(ours, MMCVPatchEmbed)
    assert list(ours.state_dict()) == ['projection.weight', 'projection.bias', 'norm.weight',
                                       'norm.bias']
    x = torch.randn(2, 3, 8, 12)
    tokens, hw = ours(x)
    ref = F.conv2d(x, ours.projection.weight, ours.projection.bias, stride=4)
    ref = F.layer_norm(ref.flatten(2).transpose(1, 2), (8, ), ours.norm.weight, ours.norm.bias,
                       1e-6)
    assert hw == (2, 3) and torch.allclose(tokens, ref, atol=1e-6)
    # dense tasks: zero padding at the right and bottom (mmcv's corner AdaptivePadding)
    dense = PatchEmbed(3, 8, 4, pad=True)
    y = torch.randn(1, 3, 10, 13)
    tokens, hw = dense(y)
    ref = F.conv2d(F.pad(y, (0, 3, 0, 2)), dense.projection.weight, dense.projection.bias,
                   stride=4)
    assert hw == (3, 4) and torch.allclose(tokens, ref.flatten(2).transpose(1, 2), atol=1e-6)
    with pytest.raises(ValueError) as err:
        ours(y)
    assert str(err.value) == ('PyramidVisionLLaMA: input size 10x13 is not divisible by the '
                              'patch size 4; resize or pad the image to a multiple of 4 (e.g. '
                              'pad_size_divisor=4).')
    with pytest.raises(ValueError, match=r'^VisionLLaMA: patch_size must be a positive int, '
                       r'got 0\.$'):
        PatchEmbed(3, 8, 0, owner='VisionLLaMA')
    with pytest.raises(ValueError, match=r'expected an image batch \(B, C, H, W\), got shape '
                       r'\(3, 8, 12\)'):
        ours(x[0])
