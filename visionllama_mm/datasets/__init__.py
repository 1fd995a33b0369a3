from .class_labels import ClassLabelDataset
from .digits import (DigitsDataset, prepare_digits, write_digit_captions,
                     write_digit_counting_sentences)
from .image_text import ImageTextDataset, TokenizeText, WebDatasetImageText, expand_shards
from .latents import LatentDataset, read_latent_meta
from .sample_photos import SamplePhotoTiles, prepare_sample_photo_tiles
from .token_streams import *  # noqa: F401,F403 (LVM token windows, shards, special ids)
from .token_streams import __all__ as _token_streams_all
from .transforms import (CheckedLoadImageFromFile, CheckedLoadSegAnnotations, decode_image,
                         use_checked_image_loading)
from .visual_sentences import *  # noqa: F401,F403 (LVM visual sentences)
from .visual_sentences import __all__ as _visual_sentences_all
from .wds_benchmark import WdsBenchmarkDataset
from .winogavil import WinoGAViLDataset, find_winogavil_tables, winogavil_download_command

__all__ = [
    'DigitsDataset', 'prepare_digits', 'write_digit_captions', 'write_digit_counting_sentences',
    'ImageTextDataset', 'TokenizeText', 'SamplePhotoTiles', 'prepare_sample_photo_tiles',
    'WebDatasetImageText', 'expand_shards', 'ClassLabelDataset', 'LatentDataset',
    'read_latent_meta', 'CheckedLoadImageFromFile', 'CheckedLoadSegAnnotations', 'decode_image',
    'use_checked_image_loading', 'WdsBenchmarkDataset', 'WinoGAViLDataset',
    'find_winogavil_tables', 'winogavil_download_command'
]
__all__ += _token_streams_all + _visual_sentences_all
