# Locked-Text Tuning on the digits: a fresh image tower learns against the frozen text tower of a
# finished clip_vitamin-tiny_1xb64-300it_digits.py run (its checkpoint given as text_checkpoint).
#   python tools/train.py configs/vitamin/clip-ltt_vitamin-tiny_1xb64-300it_digits.py \
#       --cfg-options model.text_checkpoint=work_dirs/clip_vitamin-tiny_1xb64-300it_digits/iter_300.pth
# The text tower and logit scale come from that checkpoint; only the text tower is locked.
_base_ = ['./clip_vitamin-tiny_1xb64-300it_digits.py']

model = dict(text_checkpoint=None, lock_text=True)
