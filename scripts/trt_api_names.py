"""Write the Python-visible names of TensorRT's bindings, per version, for the API conformance test.

    python3 scripts/trt_api_names.py                       # the versions below, tensorrt-cu12-bindings
    python3 scripts/trt_api_names.py --versions 10.16.1.11 11.4.0.106 --cuda 13 --wheels /tmp/trt_wheels

For each version it downloads the ``tensorrt-cu<N>-bindings`` wheel with ``pip download --no-deps`` (nothing
is installed: the wheel cannot be imported without NVIDIA's libraries anyway), opens the extension module
``tensorrt_bindings/tensorrt*.so`` inside it and collects the NUL-terminated identifiers of its read-only
data section: pybind11 registers every class, method, property and enum member by a C string, so these are
the names Python sees. The result, one name a line, goes to ``tests/tensorrt/data/trt_api_<version>.txt``.

Limits the check has to live with: the strings carry no scope (``FP16`` is known to exist, not that it is a
``BuilderFlag`` member), and the linker stores a string that ends another one inside it (``INT8`` inside
``UINT8``, ``serialize`` inside ``deserialize``, ``bool`` inside ``"({%}) -> bool"``), so the identifier that
ends a longer string is kept too, and a name is present when it is a line or the tail of one.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

# the last TensorRT 10.x and the current 11.x on the package index (`pip index versions tensorrt-cu12-bindings`)
VERSIONS = ("10.16.1.11", "11.4.0.106")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "tensorrt" / "data"
_IDENT = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_TAIL = re.compile(rb"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*$")


def download(package: str, version: str, dest: Path) -> Path:
    """The wheel of `package==version` for CPython 3.11 / manylinux x86_64, from the package index (cached)."""
    found = sorted(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
           "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "-d", str(dest), f"{package}=={version}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    found = sorted(dest.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"Error: pip downloaded no wheel for {package}=={version} into {dest}")
    return found[0]


def rodata(elf: bytes) -> bytes:
    """The ``.rodata`` section of a 64-bit little-endian ELF file."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    names_off = sections[shstrndx][4]
    for name_off, _type, _flags, _addr, offset, size in sections:
        end = elf.index(b"\0", names_off + name_off)
        if elf[names_off + name_off:end] == b".rodata":
            return elf[offset:offset + size]
    raise ValueError("no .rodata section")


def binding_names(so: bytes) -> list[str]:
    """Identifier strings of the module's read-only data (C++ mangled names excluded), and the identifier
    that ends a longer string (``bool`` is stored as the end of ``"({%}) -> bool"``)."""
    names = set()
    for chunk in rodata(so).split(b"\0"):
        match = _IDENT.fullmatch(chunk) or _TAIL.search(chunk)
        if match and 2 <= len(match.group()) <= 100 and not match.group().startswith(b"_Z"):
            names.add(match.group().decode("ascii"))
    return sorted(names)


def names_of_wheel(wheel: Path) -> tuple[list[str], str]:
    with zipfile.ZipFile(wheel) as zf:
        members = [n for n in zf.namelist() if re.fullmatch(r"tensorrt_bindings/tensorrt[^/]*\.so", n)]
        if len(members) != 1:
            raise SystemExit(f"Error: expected one tensorrt_bindings/tensorrt*.so in {wheel.name}, found {members}")
        so = zf.read(members[0])
    return binding_names(so), hashlib.sha256(so).hexdigest()


def write_names(version: str, package: str, wheel: Path, names: list[str], so_sha256: str, out: Path) -> Path:
    path = out / f"trt_api_{version}.txt"
    header = [f"# Python-visible names of {package}=={version} ({wheel.name}),",
              f"# from the .rodata strings of tensorrt_bindings/tensorrt.so (sha256 {so_sha256}).",
              "# Regenerate: python3 scripts/trt_api_names.py. A name is present as a line or as the tail of one.",
              f"# {len(names)} names"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(header + names) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), help="TensorRT versions (default: %(default)s)")
    parser.add_argument("--cuda", choices=("12", "13"), default="12", help="bindings built for CUDA 12 or 13")
    parser.add_argument("--wheels", type=Path, default=None, help="folder for the downloaded wheels (default: temporary)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the names files go (default: %(default)s)")
    args = parser.parse_args(argv)
    package = f"tensorrt-cu{args.cuda}-bindings"
    with tempfile.TemporaryDirectory() as tmp:
        dest = args.wheels or Path(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        for version in args.versions:
            wheel = download(package, version, dest)
            names, so_sha = names_of_wheel(wheel)
            path = write_names(version, package, wheel, names, so_sha, args.out)
            print(f"{package}=={version}: {len(names)} names -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
