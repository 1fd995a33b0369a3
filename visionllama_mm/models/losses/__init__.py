from .binary_cross_entropy import BinarizedBCELoss

__all__ = ['BinarizedBCELoss']
