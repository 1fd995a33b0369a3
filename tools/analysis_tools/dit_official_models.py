"""Reference factory for ``benchmark.py`` on DiT-LLaMA configs: the official DiT-LLaMA layout
(``dit/models.py``: the complex 2-D RoPE table rebuilt when the token count changes, a complex
multiply, separate ``c_fc1``/``c_fc2``/``c_proj``, ``F.scaled_dot_product_attention``) at the
config's sizes, from the independent re-implementation the parity tests use
(``tests/models/diffusion/official_dit_reference.py``).

    python tools/analysis_tools/benchmark.py configs/dit_llama/dit_llama-b-p4_...py \
        --reference-file tools/analysis_tools/dit_official_models.py --reference-model DiT_LLaMA

The factory takes the official ``DiT`` constructor's keyword names, which ``benchmark.py`` passes
for a diffusion config, so the official ``models.py`` itself (where its dependencies are
installed) is a drop-in ``--reference-file``.
"""
import os.path as osp
import sys

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if _REPO not in sys.path:  # the reference lives in the test package (relative imports)
    sys.path.insert(0, _REPO)

from tests.models.diffusion.official_dit_reference import OfficialDiTLLaMA  # noqa: E402


def DiT_LLaMA(input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28,
              num_heads=16, num_classes=1000, learn_sigma=True):
    """The official-layout DiT-LLaMA with the official ``DiT(...)`` arguments (learned sigma and
    a null class, as every released DiT-LLaMA)."""
    if not learn_sigma:
        raise ValueError('DiT_LLaMA reference: the official-layout reference always learns sigma '
                         '(2 * in_channels outputs)')
    return OfficialDiTLLaMA(input_size=input_size, patch=patch_size, in_ch=in_channels,
                            dim=hidden_size, depth=depth, heads=num_heads, classes=num_classes)
