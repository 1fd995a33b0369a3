"""Metrics registered into mmpretrain, mmseg and mmdet (``METRICS``)."""
from .datacomp import (ImageTextRecall, MacroF1, MeanPerClassRecall,  # noqa: F401
                       RetrievalTestLoop, WorstGroupAccuracy, ZeroShotTestLoop)
from .generation import GenerationMetric, frechet_distance  # noqa: F401
from .perplexity import Perplexity  # noqa: F401
from .psnr import ReconstructionPSNR  # noqa: F401
