"""Image files <-> uint8 RGB arrays <-> model tensors.

Everything in edgesr works on HxWx3 uint8 RGB arrays; this module is the only place that
knows about file modes (grayscale, alpha, palette, 16-bit) and formats. EXIF orientation is
deliberately not applied: SR datasets are stored raw and HR/LR pairs must stay aligned.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from edgesr.errors import ImageError, UserInputError
from edgesr.utils.atomic import atomic_path, check_writable

log = logging.getLogger(__name__)

#: Output extension -> PIL format name. The atomic writer's temp file ends in .tmp, so PIL cannot
#: guess the format from the name.
WRITE_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
_NO_ALPHA_FORMATS = {"JPEG", "BMP"}  # PIL cannot write (JPEG) or read back (BMP) an alpha channel
_SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 95},
    "WEBP": {"quality": 95},
}


def _open(path: Path) -> Image.Image:
    """Open and decode `path` fully, turning every failure into an ImageError naming the file."""
    if not path.exists():
        raise ImageError(f"cannot read image {path}: file not found.")
    if path.is_dir():
        raise ImageError(f"cannot read image {path}: it is a folder, not an image file.")
    try:
        img = Image.open(path)
        img.load()  # decode now so truncated/corrupt data fails here, not later
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not an image file or an unsupported format.") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL reports corrupt data with these
        raise ImageError(f"cannot read image {path}: corrupt or truncated image ({exc}).") from None
    if getattr(img, "n_frames", 1) > 1:
        log.warning("%s has %d frames; using the first.", path, img.n_frames)
    return img


def _sixteen_to_eight(arr: np.ndarray) -> np.ndarray:
    """Scale 0..65535 to 0..255, rounding to nearest (x/257 never falls exactly on .5)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _split(img: Image.Image, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """HxWx3 uint8 RGB and HxW uint8 alpha (None when the file has no alpha) of a decoded image."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageError(f"cannot read image {path}: 32-bit integer values outside 0..65535.")
        gray = _sixteen_to_eight(arr)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if mode == "F":
        raise ImageError(f"cannot read image {path}: floating-point images (mode F) are not supported.")
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA" if (mode == "PA" or "transparency" in img.info) else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode == "L" and "transparency" in img.info:
        img = img.convert("LA")
    elif mode == "RGB" and "transparency" in img.info:
        img = img.convert("RGBA")
    elif mode == "RGBa":  # premultiplied alpha
        img = img.convert("RGBA")
    mode = img.mode
    if mode == "RGB":
        return np.array(img, dtype=np.uint8), None
    if mode == "L":
        gray = np.asarray(img, dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    if mode == "LA":
        arr = np.asarray(img, dtype=np.uint8)
        return np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1].copy()
    if mode == "RGBA":
        arr = np.asarray(img, dtype=np.uint8)
        return arr[:, :, :3].copy(), arr[:, :, 3].copy()
    try:  # CMYK, YCbCr, LAB, HSV, RGBX, ...: let PIL do the colour conversion
        return np.array(img.convert("RGB"), dtype=np.uint8), None
    except (ValueError, OSError) as exc:
        raise ImageError(f"cannot read image {path}: unsupported image mode {mode!r} ({exc}).") from None


def read_header(path: str | Path) -> tuple[int, int, str]:
    """(width, height, PIL mode) of an image file from its header alone, without decoding pixels, so
    a caller can refuse an oversized image (a decompression bomb below PIL's own limit) before any
    large allocation."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"cannot read image {path}: file not found.")
    if path.is_dir():
        raise ImageError(f"cannot read image {path}: it is a folder, not an image file.")
    try:
        with Image.open(path) as img:
            return img.width, img.height, img.mode
    except UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not an image file or an unsupported format.") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"cannot read image {path}: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot read image {path}: corrupt or truncated image ({exc}).") from None


def read_image_with_alpha(path: str | Path, *, exif_orientation: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Read `path` as (HxWx3 uint8 RGB, HxW uint8 alpha or None).

    The alpha channel is returned separately so callers (e.g. `upscale`) can resize it on
    its own; it is None when the file has no transparency. `exif_orientation` rotates/flips the
    pixels as the file's EXIF Orientation tag says (what a photo viewer shows).
    """
    path = Path(path)
    with _open(path) as img:
        if exif_orientation:
            from PIL import ImageOps

            img = ImageOps.exif_transpose(img)
        return _split(img, path)


def read_image(path: str | Path) -> np.ndarray:
    """Read `path` as HxWx3 uint8 RGB (grayscale -> 3 equal channels, alpha dropped, 16-bit -> 8-bit)."""
    return read_image_with_alpha(path)[0]


def _check_uint8_image(rgb: object, name: str = "image") -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        kind = rgb.dtype if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise UserInputError(f"{name} must be a uint8 numpy array (HxWx3), got {kind}; see to_uint8().")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UserInputError(f"{name} must have shape HxWx3, got {rgb.shape}.")
    return rgb


def write_image(path: str | Path, rgb: np.ndarray, alpha: np.ndarray | None = None,
                force: bool = False) -> Path:
    """Write HxWx3 uint8 `rgb` (plus an optional HxW uint8 `alpha`) to `path` atomically.

    The format comes from the extension (.png .jpg .jpeg .bmp .tif .tiff .webp). An existing
    file is only replaced with `force`; a failed write leaves neither a partial file nor a
    temp file. JPEG and BMP cannot keep alpha: it is dropped with a warning.
    """
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserInputError(
            f"cannot write {path}: unknown image extension {path.suffix!r}; "
            "use one of .png, .jpg, .bmp, .tif, .webp."
        )
    check_writable(path, force)  # fail before any encoding work
    _check_uint8_image(rgb, "rgb")
    if alpha is not None:
        if not isinstance(alpha, np.ndarray) or alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]:
            got = f"{alpha.dtype} {alpha.shape}" if isinstance(alpha, np.ndarray) else type(alpha).__name__
            raise UserInputError(f"alpha must be a uint8 array of shape {rgb.shape[:2]}, got {got}.")
        if fmt in _NO_ALPHA_FORMATS:
            warnings.warn(f"{path.suffix} cannot store transparency; writing {path} without alpha.",
                          stacklevel=2)
            alpha = None
    if alpha is None:
        img = Image.fromarray(np.ascontiguousarray(rgb))  # HxWx3 uint8 -> RGB
    else:
        img = Image.fromarray(np.ascontiguousarray(np.dstack([rgb, alpha])))  # -> RGBA
    with atomic_path(path, force) as tmp:
        try:
            img.save(tmp, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
        except (OSError, ValueError) as exc:
            raise ImageError(f"cannot write image {path}: {exc}") from exc
    return path


def to_tensor(img: np.ndarray, data_range: float = 1.0) -> torch.Tensor:
    """HxWxC (or HxW) uint8 -> float32 1xCxHxW in 0..data_range (1.0, or 255.0 for RLFN-style models)."""
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
        got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise UserInputError(f"to_tensor expects a uint8 HxWxC array, got {got}.")
    if img.ndim == 2:
        img = img[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).unsqueeze(0).float()
    return t if data_range == 255.0 else t / (255.0 / data_range)


def to_uint8(tensor: torch.Tensor, data_range: float = 1.0) -> np.ndarray:
    """1xCxHxW (or CxHxW) float in 0..data_range -> HxWxC uint8.

    The evaluation protocol: clamp to the range, rescale to 0..255, round (half to even, as
    torch.round does), cast.
    """
    if not isinstance(tensor, torch.Tensor):
        raise UserInputError(f"to_uint8 expects a torch tensor, got {type(tensor).__name__}.")
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise UserInputError(f"to_uint8 expects a batch of one image, got shape {tuple(tensor.shape)}.")
        tensor = tensor[0]
    if tensor.ndim != 3:
        raise UserInputError(f"to_uint8 expects a 1xCxHxW or CxHxW tensor, got shape {tuple(tensor.shape)}.")
    t = tensor.detach().to("cpu", torch.float32).clamp(0.0, data_range)
    if data_range != 255.0:
        t = t * (255.0 / data_range)
    return torch.round(t).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop H and W down to multiples of `scale` (keeping the top-left), as SR benchmarks do."""
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise UserInputError(f"scale must be a positive integer, got {scale!r}.")
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise UserInputError("modcrop expects an HxW or HxWxC numpy array.")
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    if h == 0 or w == 0:
        raise ImageError(f"image of size {img.shape[1]}x{img.shape[0]} is smaller than the scale {scale}.")
    return img[:h, :w]
