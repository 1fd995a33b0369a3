"""SiT-LLaMA (flow matching, SDE sampling) learns class-conditional digits in pixel space (16x16).

The toy config is trained by ``tools/train.py``; ``tools/test.py`` draws 10 guided samples per class
(``ClassLabelDataset`` + ``GenerationMetric``, which writes the PNGs and the ADM ``.npz``) from the
trained checkpoint and from the untrained model. A classifier trained on the real digits
(:class:`tests.tools.digit_judge.DigitJudge`, held-out accuracy ~0.97) labels them: the share
labelled as their conditioning class must be >= 60% (chance 10%), and the Fréchet distance in the
judge's hidden-feature space to the held-out digits must fall below half the untrained model's.
"""
import os.path as osp

from ..conftest import REPO
from .digit_judge import DigitJudge, check_learns_digits

CONFIG = osp.join(REPO, 'configs/dit_llama/sit_llama-tiny-p4_1xb64-1250it_digits-16px.py')


def test_sit_llama_learns_class_conditional_digits(python, tmp_path):
    judge = DigitJudge()
    assert judge.val_accuracy > 0.93, judge.val_accuracy  # a judge worth trusting
    check_learns_digits(CONFIG, python, tmp_path, judge)
