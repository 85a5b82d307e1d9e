"""Building blocks shared by several architectures."""
from edgesr.layers.scale import ValueScale
from edgesr.layers.upsample import PixelShuffleUpsampler, conv_layer

__all__ = ["ValueScale", "PixelShuffleUpsampler", "conv_layer"]
