"""Visual sentences for LVM: builders (:mod:`.builders`), transforms (:mod:`.transforms`),
dataset (:mod:`.dataset`).

A visual sentence is a run of images with no separator; BOS/EOS are added by whoever turns it into
tokens (:class:`~visionllama_mm.models.lvm.LVM` online, ``tools/lvm/tokenize_sentences.py``
offline), never here.

Annotation files hold one JSON object per line, paths relative to ``data_root``:

* ours: ``{"images": [paths], "type": "single|sequence|pair|colorization|inpainting|category|
  multi"}`` (other keys are kept as information); a video sentence is ``{"video": path,
  "frames": [indices], "type": "video"}``. Colorization and inpainting lines list the source
  images: the pipeline makes the (input, source) pair of each.
* the official evaluation files (LVM's ``evaluation/EVAL.md``): ``{"input": [paths],
  "target": [paths]}`` for perplexity (type ``'perplexity'``) and ``{"input": [paths],
  "output": path(s)}`` for generation (type ``'generation'``; ``output`` is the ground-truth
  next image(s)). The targets are the sentence's last images (``num_target_images``).

The builders (``*_sentences``) are pure functions from lists of paths to such lines, seeded,
following the official tokenize scripts (``tokenize_examples/*.py``); :func:`write_sentences`
writes them. The default pipeline is :func:`default_sentence_pipeline`.
"""
from .builders import *  # noqa: F401,F403
from .builders import __all__ as _builders_all
from .dataset import *  # noqa: F401,F403
from .dataset import __all__ as _dataset_all
from .transforms import *  # noqa: F401,F403
from .transforms import __all__ as _transforms_all

__all__ = _dataset_all + _transforms_all + _builders_all
