"""Building blocks shared by several architectures, and the exact arithmetic that folds them (`fold_math`)."""
from edgesr.layers.scale import ValueScale, ValueShift
from edgesr.layers.upsample import PixelShuffleUpsampler, conv_layer

__all__ = ["ValueScale", "ValueShift", "PixelShuffleUpsampler", "conv_layer"]
