"""Find or download pretrained weights, always verified by sha256.

`resolve_weights` turns a checkpoint path or a pretrained variant into a local file:

1. an existing file is returned as is (verified only when it carries the variant's official
   file name, so a corrupt copy of an official file is caught);
2. a variant's file is looked for, by name, in `weight_search_dirs()`
   ($EDGESR_WEIGHTS_DIR, then `<cache>/weights`, then `<shared>/weights`); the first hit is verified;
3. otherwise it is downloaded (unless offline) into `<cache>/weights/`, streamed to a temporary file
   in the same folder, verified, then renamed into place: a corrupt or partial download never
   lands in the cache.

Only bytes and their hash are handled here; nothing from a downloaded file is executed or unpickled.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from edgesr.errors import UnknownModelError, UserInputError, WeightsError
from edgesr.models.registry import PretrainedCfg, get_pretrained_cfg, list_pretrained
from edgesr.paths import cache_dir, weight_search_dirs
from edgesr.utils.atomic import atomic_path
from edgesr.utils.hashing import sha256_file

__all__ = ["resolve_weights", "sha256_file", "verify_sha256", "download", "is_offline"]

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = ("http", "https", "file")
_TRUTHY = ("1", "true", "yes")
_ENV_HELP = ("EDGESR_WEIGHTS_DIR (an extra folder searched first), EDGESR_CACHE (download cache), "
             "EDGESR_SHARED (shared data root), EDGESR_OFFLINE=1 (never download)")


def _normalize_digest(expected: str) -> str:
    return expected.strip().lower()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise WeightsError, naming the file and both digests, unless `path` hashes to `expected`."""
    actual = sha256_file(Path(path))
    if actual != _normalize_digest(expected):
        raise WeightsError(
            f"sha256 mismatch for {path}: expected {_normalize_digest(expected)}, got {actual}. "
            "The file is corrupt or not the file it claims to be."
        )


def is_offline(offline: bool | None = None) -> bool:
    """`offline` if given, else whether $EDGESR_OFFLINE is one of 1/true/yes."""
    if offline is not None:
        return bool(offline)
    return os.environ.get("EDGESR_OFFLINE", "").strip().lower() in _TRUTHY


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise WeightsError(
            f"refusing to download {url!r}: only {', '.join(ALLOWED_SCHEMES)} URLs are accepted."
        )


def _network_error(url: str, exc: BaseException, hint: str) -> WeightsError:
    if isinstance(exc, urllib.error.HTTPError):
        reason = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        reason = str(exc.reason)
    elif isinstance(exc, TimeoutError):
        reason = "timed out"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return WeightsError(f"could not download {url}: {reason}. {hint}")


_DEFAULT_HINT = ("If this machine has no network, fetch the file by hand and place it in one of the "
                 "folders edgesr searches for weights (see EDGESR_WEIGHTS_DIR).")


def _download(url: str, dest: Path, sha256: str | None, *, progress: bool, timeout: float,
              hint: str) -> Path:
    from tqdm.auto import tqdm

    _check_url(url)
    dest = Path(dest)
    with contextlib.ExitStack() as stack:
        # atomic_path removes the temporary file on any error, so nothing partial is left behind.
        try:
            tmp = stack.enter_context(atomic_path(dest, force=True))
        except (UserInputError, OSError) as exc:
            raise WeightsError(
                f"cannot write {dest.name} to {dest.parent}: {exc}. Point EDGESR_CACHE at a writable folder."
            ) from exc
        logger.info("Downloading %s to %s", url, dest)
        request = urllib.request.Request(url, headers={"User-Agent": "edgesr"})
        try:
            response = stack.enter_context(urllib.request.urlopen(request, timeout=timeout))  # noqa: S310
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _network_error(url, exc, hint) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise _network_error(url, exc, hint) from exc
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        received = 0
        with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=dest.name, disable=None if progress else True,
                                         leave=False) as bar:
            while True:
                try:
                    block = response.read(1 << 16)
                except (http.client.HTTPException, OSError) as exc:
                    raise _network_error(url, exc, hint) from exc
                if not block:
                    break
                try:
                    f.write(block)
                except OSError as exc:
                    raise WeightsError(f"cannot write {dest.name} to {dest.parent}: {exc}.") from exc
                digest.update(block)
                received += len(block)
                bar.update(len(block))
            f.flush()
            os.fsync(f.fileno())
        if total is not None and received != total:
            raise WeightsError(
                f"download of {url} is incomplete: got {received} of {total} bytes. {hint}"
            )
        actual = digest.hexdigest()
        if sha256 is None:
            logger.warning("no sha256 known for %s; %s was not verified", url, dest.name)
        elif actual != _normalize_digest(sha256):
            raise WeightsError(
                f"sha256 mismatch for the file downloaded from {url}: expected "
                f"{_normalize_digest(sha256)}, got {actual}. It was discarded; nothing was written "
                f"to {dest.parent}. Try again later, or fetch the file by hand and check its sha256."
            )
    logger.info("Saved %s (%d bytes, sha256 %s)", dest, received, actual)
    return dest


def download(url: str, dest: Path, sha256: str | None, *, progress: bool = True,
             timeout: float = 60) -> Path:
    """Stream `url` (http, https or file) to `dest`, verifying `sha256` before `dest` appears.

    The bytes go to a temporary file beside `dest`, which is renamed into place (replacing any
    existing `dest`) only once the digest matches; on any failure it is removed. `timeout` is
    the socket timeout in seconds. Raises WeightsError on network, write or checksum errors.
    """
    return _download(url, Path(dest), sha256, progress=progress, timeout=timeout, hint=_DEFAULT_HINT)


def _verify_found(path: Path, variant: PretrainedCfg) -> None:
    """Verify a local copy of an official file, with advice fitting where it was found."""
    if not variant.sha256:
        logger.warning("no sha256 known for %s; using %s unverified", variant.name, path)
        return
    actual = sha256_file(path)
    expected = _normalize_digest(variant.sha256)
    if actual == expected:
        logger.debug("verified %s (sha256 %s)", path, actual)
        return
    in_cache = path.parent.resolve() == (cache_dir() / "weights").resolve()
    if in_cache:
        todo = f"Delete it (rm '{path}') and run again: it will be re-downloaded"
        todo += f" from {variant.url}." if variant.url else "."
    else:
        todo = "Delete it or replace it with a good copy"
        todo += f" (download it from {variant.url})." if variant.url else "."
    raise WeightsError(
        f"{path} is corrupt or not the official {variant.name} weights: sha256 is {actual}, "
        f"expected {expected}. {todo}"
    )


def _check_filename(variant: PretrainedCfg) -> str:
    name = variant.filename
    if not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        raise WeightsError(f"variant {variant.name} has an invalid file name {name!r}.")
    return name


def _no_such_file(spec: str | os.PathLike) -> WeightsError:
    path = Path(spec).expanduser()
    what = "is a folder, not a checkpoint file" if path.is_dir() else "no such file"
    known = ", ".join(cfg.name for cfg in list_pretrained()) or "none registered"
    return WeightsError(
        f"{what}: {path}. Pass the path of a checkpoint file, or one of the pretrained "
        f"weights by name: {known}."
    )


def resolve_weights(spec: str | os.PathLike, variant: PretrainedCfg | None = None, *,
                    offline: bool | None = None, progress: bool = True) -> Path:
    """Return a local, verified checkpoint path for `spec`.

    Args:
        spec: a checkpoint path, or a pretrained variant name / file name (then `variant` says
            which file to find; if `variant` is None a plain name is looked up in the registry).
        variant: the pretrained variant whose file, URL and sha256 to use.
        offline: never download; None reads $EDGESR_OFFLINE (1/true/yes).
        progress: show a progress bar while downloading (only on a terminal).

    Raises:
        WeightsError: no such file, a corrupt local or downloaded file, offline with no local
            copy, or a failed download. The message says what was searched and what to do.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        if variant is not None and path.name == variant.filename:
            _verify_found(path, variant)
        return path

    if variant is None:
        text = os.fspath(spec)
        if isinstance(text, str) and text and Path(text).name == text:
            try:
                variant = get_pretrained_cfg(text)
            except UnknownModelError:
                variant = None
        if variant is None:
            raise _no_such_file(spec)

    filename = _check_filename(variant)
    dirs = weight_search_dirs()
    for folder in dirs:
        candidate = folder / filename
        if candidate.is_file():
            logger.debug("found %s in %s", filename, folder)
            _verify_found(candidate, variant)
            return candidate

    searched = ", ".join(str(d) for d in dirs)
    url_part = (f"Download it by hand from {variant.url} and place it as {filename}" if variant.url
                else "Place it")
    if variant.url is None:
        raise WeightsError(
            f"{filename} ({variant.name}) was not found and has no download URL. Searched: {searched}. "
            f"{url_part} in one of these folders. Environment: {_ENV_HELP}."
        )
    if is_offline(offline):
        raise WeightsError(
            f"{filename} ({variant.name}) was not found locally and downloading is off (offline mode"
            f"{': EDGESR_OFFLINE is set' if offline is None else ''}). Searched: {searched}. "
            f"{url_part} in one of these folders. Environment: {_ENV_HELP}."
        )
    dest = cache_dir() / "weights" / filename
    hint = (f"To work offline, fetch it by hand and place it as {filename} in one of: {searched} "
            f"(set EDGESR_WEIGHTS_DIR to add a folder; EDGESR_OFFLINE=1 disables downloading).")
    return _download(variant.url, dest, variant.sha256, progress=progress, timeout=60, hint=hint)
