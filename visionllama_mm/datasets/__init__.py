from .digits import DigitsDataset, prepare_digits

__all__ = ['DigitsDataset', 'prepare_digits']
