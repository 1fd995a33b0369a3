"""Reference factories for ``benchmark.py`` on pyramid VisionLLaMA configs: timm's Twins-SVT with
the FFNs of the pyramid VisionLLaMA of the same size.

Pyramid VisionLLaMA keeps Twins-SVT's stages, LSA/GSA attention and widths but replaces the GELU
MLPs (hidden 4x) by SwiGLU FFNs of three matrices (hidden ``feedforward_channels``). At S that
is 11% more multiply-adds than ``twins_svt_small``, so timm's Twins is the faster architecture, not only the
faster code. These factories put timm's own packed SwiGLU (``timm.layers.SwiGLUPacked``, one
``fc1`` to both halves, no bias, as ours) of the same hidden width into every timm Twins block:
the same matrix work as ours, written by timm, which separates the cost of the architecture
from the cost of our implementation.

    python tools/analysis_tools/benchmark.py \
        configs/visionllama/visionllama-pyramid-small_8xb128-300e_in1k.py --compile \
        --timm twins_svt_small \
        --reference-file tools/analysis_tools/twins_swiglu_models.py \
        --reference-model twins_svt_small_swiglu

What still differs: Twins keeps its position-encoding generator (a depthwise 3x3 conv after the
first block of each stage) and has no LayerScale; ours has 2D RoPE and LayerScale instead.
"""
import timm
from timm.layers import SwiGLUPacked

from visionllama_mm.models.backbones.pyramid_vision_llama import PyramidVisionLLaMA


def _with_swiglu(timm_name: str, arch: str, num_classes: int, drop_path_rate: float):
    model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes,
                              drop_path_rate=drop_path_rate)
    dims = PyramidVisionLLaMA.arch_zoo[arch]
    for stage, dim, ffn in zip(model.blocks, dims['embed_dims'], dims['feedforward_channels']):
        for block in stage:
            block.mlp = SwiGLUPacked(in_features=dim, hidden_features=2 * ffn, bias=False)
    return model


def twins_svt_small_swiglu(num_classes: int = 1000, drop_path_rate: float = 0.):
    """timm ``twins_svt_small`` with pyramid-S's SwiGLU FFNs (hidden 256/512/768/1536)."""
    return _with_swiglu('twins_svt_small', 'small', num_classes, drop_path_rate)


def twins_svt_base_swiglu(num_classes: int = 1000, drop_path_rate: float = 0.):
    """timm ``twins_svt_base`` with pyramid-B's SwiGLU FFNs (hidden 256/512/1024/2048)."""
    return _with_swiglu('twins_svt_base', 'base', num_classes, drop_path_rate)


def twins_svt_large_swiglu(num_classes: int = 1000, drop_path_rate: float = 0.):
    """timm ``twins_svt_large`` with pyramid-L's SwiGLU FFNs (hidden 512/768/1536/2816)."""
    return _with_swiglu('twins_svt_large', 'large', num_classes, drop_path_rate)
