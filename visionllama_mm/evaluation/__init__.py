"""Metrics registered into mmpretrain, mmseg and mmdet (``METRICS``)."""
from .datacomp import (ImageTextRecall, ImageTextRetrievalLoop, MacroF1,  # noqa: F401
                       MeanPerClassRecall, WinoGAViLJaccard, WinoGAViLTestLoop, WorstGroupAccuracy,
                       ZeroShotTestLoop)
from .generation import GenerationMetric, frechet_distance  # noqa: F401
from .perplexity import Perplexity  # noqa: F401
from .psnr import ReconstructionPSNR  # noqa: F401
