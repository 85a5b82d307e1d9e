"""Image IO, MATLAB-compatible bicubic resizing and benchmark datasets."""
from __future__ import annotations

from edgesr.data.datasets import (
    IMAGE_EXTENSIONS,
    LRImageFolder,
    PairedImageDataset,
    dataset_name,
    find_images,
    open_eval_dataset,
    resolve_dataset,
)
from edgesr.data.image_io import (
    modcrop,
    read_image,
    read_image_with_alpha,
    to_tensor,
    to_uint8,
    write_image,
)
from edgesr.data.imresize import bicubic_downscale, imresize

__all__ = [
    "IMAGE_EXTENSIONS",
    "LRImageFolder",
    "PairedImageDataset",
    "bicubic_downscale",
    "dataset_name",
    "find_images",
    "imresize",
    "modcrop",
    "open_eval_dataset",
    "read_image",
    "read_image_with_alpha",
    "resolve_dataset",
    "to_tensor",
    "to_uint8",
    "write_image",
]
