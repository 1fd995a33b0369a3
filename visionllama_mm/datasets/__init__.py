from .digits import DigitsDataset, prepare_digits, write_digit_captions
from .image_text import ImageTextDataset, TokenizeText, WebDatasetImageText, expand_shards

__all__ = [
    'DigitsDataset', 'prepare_digits', 'write_digit_captions', 'ImageTextDataset', 'TokenizeText',
    'WebDatasetImageText', 'expand_shards'
]
