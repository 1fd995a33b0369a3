"""Metrics registered into mmpretrain, mmseg and mmdet (``METRICS``)."""
from .perplexity import Perplexity  # noqa: F401
