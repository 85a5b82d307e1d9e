"""edgesr.models.hub: local lookup, verified download, offline mode and error messages.

The real shared/weights folder is served over HTTP from 127.0.0.1 (no internet needed);
the cache and the shared root are redirected to temporary folders so nothing is found by accident.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from edgesr.errors import WeightsError
from edgesr.models.hub import download, resolve_weights, sha256_file, verify_sha256
from edgesr.models.registry import PretrainedCfg, list_pretrained

RLFN_X4 = "rlfn_x4.pth"
RLFN_X4_SHA256 = "8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0"  # shared/README.md


def make_cfg(url: str | None, filename: str = RLFN_X4, sha256: str | None = RLFN_X4_SHA256) -> PretrainedCfg:
    return PretrainedCfg(name="rlfn_x4_test", model="rlfn", scale=4, filename=filename, url=url,
                         sha256=sha256, input_range=255.0)


class Server:
    """A file server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self, directory: Path, short_by: int = 0) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                requests.append(self.path)
                if not short_by:
                    return super().do_GET()
                # announce the full length, send less, then close: a dropped connection
                data = (Path(directory) / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data[:-short_by])
                self.close_connection = True

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Path], Server]]:
    servers: list[Server] = []

    def start(directory: Path, short_by: int = 0) -> Server:
        servers.append(Server(directory, short_by))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Empty cache and empty shared root; no extra weights folder; online."""
    cache, shared = tmp_path / "cache", tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("EDGESR_CACHE", str(cache))
    monkeypatch.setenv("EDGESR_SHARED", str(shared))
    monkeypatch.delenv("EDGESR_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("EDGESR_OFFLINE", raising=False)
    return {"cache": cache, "cache_weights": cache / "weights", "shared": shared}


def files_in(folder: Path) -> list[str]:
    """Every file (hidden temporaries included) under `folder`."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_sha256_file_and_verify(weights_dir: Path, tmp_path: Path) -> None:
    src = weights_dir / RLFN_X4
    assert sha256_file(src) == RLFN_X4_SHA256
    assert sha256_file(src, chunk=4096) == hashlib.sha256(src.read_bytes()).hexdigest()
    verify_sha256(src, RLFN_X4_SHA256.upper())  # case-insensitive
    bad = "0" * 64
    with pytest.raises(WeightsError) as info:
        verify_sha256(src, bad)
    msg = str(info.value)
    assert str(src) in msg and bad in msg and RLFN_X4_SHA256 in msg


def test_download_lands_in_cache_and_is_reused(weights_dir: Path, env: dict[str, Path], serve) -> None:
    server = serve(weights_dir)
    cfg = make_cfg(server.url(RLFN_X4))
    path = resolve_weights("rlfn_x4", cfg, progress=False)
    assert path == env["cache_weights"] / RLFN_X4
    assert sha256_file(path) == RLFN_X4_SHA256
    assert files_in(env["cache"]) == [RLFN_X4]  # no temporary file left beside it
    assert server.requests == ["/" + RLFN_X4]

    again = resolve_weights("rlfn_x4", cfg, progress=True)
    assert again == path
    assert len(server.requests) == 1  # found in the cache: no second download


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_corrupt_download_never_lands_in_cache(weights_dir: Path, env: dict[str, Path], serve,
                                               tmp_path: Path, damage: str) -> None:
    data = bytearray((weights_dir / RLFN_X4).read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    served = tmp_path / "served"
    served.mkdir()
    (served / RLFN_X4).write_bytes(bytes(data))
    server = serve(served)

    with pytest.raises(WeightsError, match="sha256") as info:
        resolve_weights("rlfn_x4", make_cfg(server.url(RLFN_X4)), progress=False)
    msg = str(info.value)
    assert server.url(RLFN_X4) in msg and RLFN_X4_SHA256 in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    assert files_in(env["cache"]) == []  # neither the file nor a partial/temporary one


def test_incomplete_download_never_lands_in_cache(weights_dir: Path, env: dict[str, Path], serve) -> None:
    server = serve(weights_dir, short_by=1000)
    with pytest.raises(WeightsError, match="incomplete") as info:
        resolve_weights("rlfn_x4", make_cfg(server.url(RLFN_X4)), progress=False)
    assert server.url(RLFN_X4) in str(info.value)
    assert files_in(env["cache"]) == []


def test_corrupt_file_in_cache_is_reported(weights_dir: Path, env: dict[str, Path], serve) -> None:
    env["cache_weights"].mkdir(parents=True)
    cached = env["cache_weights"] / RLFN_X4
    cached.write_bytes((weights_dir / RLFN_X4).read_bytes()[:-10])
    server = serve(weights_dir)
    with pytest.raises(WeightsError) as info:
        resolve_weights("rlfn_x4", make_cfg(server.url(RLFN_X4)), progress=False)
    msg = str(info.value)
    assert str(cached) in msg and "corrupt" in msg and "Delete" in msg and "re-download" in msg
    assert RLFN_X4_SHA256 in msg
    assert server.requests == []  # the corrupt copy is not silently replaced
    assert cached.exists()


def test_http_404_names_url(weights_dir: Path, env: dict[str, Path], serve) -> None:
    server = serve(weights_dir)
    url = server.url("missing_x4.pth")
    with pytest.raises(WeightsError) as info:
        resolve_weights("missing_x4", make_cfg(url, filename="missing_x4.pth"), progress=False)
    msg = str(info.value)
    assert url in msg and "404" in msg
    assert "offline" in msg and str(env["cache_weights"]) in msg  # says where to put it by hand
    assert files_in(env["cache"]) == []


def test_connection_refused_is_a_weights_error(env: dict[str, Path], serve, tmp_path: Path) -> None:
    server = serve(tmp_path)
    url = server.url(RLFN_X4)
    server.close()  # nothing listens on that port any more
    with pytest.raises(WeightsError, match="could not download"):
        resolve_weights("rlfn_x4", make_cfg(url), progress=False)
    assert files_in(env["cache"]) == []


@pytest.mark.parametrize("how", ["env", "argument"])
def test_offline_without_local_copy(weights_dir: Path, env: dict[str, Path], serve,
                                    monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    server = serve(weights_dir)
    url = server.url(RLFN_X4)
    if how == "env":
        monkeypatch.setenv("EDGESR_OFFLINE", "1")
        offline = None
    else:
        offline = True
    with pytest.raises(WeightsError) as info:
        resolve_weights("rlfn_x4", make_cfg(url), offline=offline, progress=False)
    msg = str(info.value)
    assert RLFN_X4 in msg and url in msg
    assert str(env["cache_weights"]) in msg and str(env["shared"] / "weights") in msg
    assert "EDGESR_WEIGHTS_DIR" in msg and "EDGESR_OFFLINE" in msg
    assert server.requests == []
    assert files_in(env["cache"]) == []


def test_offline_argument_overrides_env(weights_dir: Path, env: dict[str, Path], serve,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESR_OFFLINE", "yes")
    server = serve(weights_dir)
    path = resolve_weights("rlfn_x4", make_cfg(server.url(RLFN_X4)), offline=False, progress=False)
    assert path == env["cache_weights"] / RLFN_X4


def test_found_in_shared_without_download(shared: Path, weights_dir: Path, env: dict[str, Path],
                                          serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESR_SHARED", str(shared))
    server = serve(weights_dir)
    path = resolve_weights(RLFN_X4, make_cfg(server.url(RLFN_X4)), progress=False)
    assert path == shared / "weights" / RLFN_X4
    assert server.requests == []
    assert files_in(env["cache"]) == []
    # a wrong checksum for the shared copy is caught, not trusted
    with pytest.raises(WeightsError, match="corrupt") as info:
        resolve_weights(RLFN_X4, make_cfg(server.url(RLFN_X4), sha256="f" * 64), progress=False)
    assert str(path) in str(info.value)


def test_weights_dir_env_is_searched_first(weights_dir: Path, shared: Path, env: dict[str, Path],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGESR_SHARED", str(shared))
    monkeypatch.setenv("EDGESR_WEIGHTS_DIR", str(weights_dir))
    assert resolve_weights("rlfn_x4", make_cfg(None), offline=True) == weights_dir / RLFN_X4


def test_explicit_path_returned_as_is(weights_dir: Path, env: dict[str, Path], tmp_path: Path) -> None:
    src = weights_dir / RLFN_X4
    assert resolve_weights(src) == src
    assert resolve_weights(str(src), make_cfg(None), offline=True) == src  # official name: verified
    other = tmp_path / "my_finetune.pth"
    other.write_bytes(b"not checked")
    assert resolve_weights(other, make_cfg(None)) == other  # not the official file name: no hash check
    assert files_in(env["cache"]) == []


def test_explicit_corrupt_copy_of_official_file(weights_dir: Path, tmp_path: Path, env: dict[str, Path]) -> None:
    copy = tmp_path / RLFN_X4
    copy.write_bytes((weights_dir / RLFN_X4).read_bytes()[:1000])
    assert resolve_weights(copy) == copy  # no variant: nothing to verify against
    with pytest.raises(WeightsError, match="corrupt") as info:
        resolve_weights(copy, make_cfg(None))
    assert str(copy) in str(info.value)


def test_nonexistent_path(tmp_path: Path, env: dict[str, Path]) -> None:
    missing = tmp_path / "nope" / "weights.pth"
    with pytest.raises(WeightsError, match="no such file") as info:
        resolve_weights(missing)
    msg = str(info.value)
    assert str(missing) in msg
    for cfg in list_pretrained():
        assert cfg.name in msg


def test_download_rejects_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="only http, https, file"):
        download("ftp://example.com/rlfn_x4.pth", tmp_path / RLFN_X4, RLFN_X4_SHA256, progress=False)
    assert files_in(tmp_path) == []


def test_download_file_url(weights_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / RLFN_X4
    assert download((weights_dir / RLFN_X4).as_uri(), dest, RLFN_X4_SHA256, progress=False) == dest
    assert sha256_file(dest) == RLFN_X4_SHA256
    assert files_in(dest.parent) == [RLFN_X4]
