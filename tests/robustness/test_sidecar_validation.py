"""The sidecar as untrusted input: bounds, consistency, naming, the published schema, hostile values.

Property tests (hypothesis) draw sidecar fields inside and outside their bounds: edgesr refuses exactly what the
published JSON Schema refuses for those fields (and a field within bounds never crashes the reader), and a
sidecar that survives validation always round-trips through JSON unchanged.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesr.artifacts import Sidecar, load_schema, schema_path, sidecar_path_for
from edgesr.artifacts import validate as V
from edgesr.errors import ArtifactMismatchError, InvalidSidecarError, UserInputError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def tiny_onnx(path: Path, scale: int = 2) -> Path:
    """A real ONNX SR graph in milliseconds: 1x1 conv to 3*s*s channels, DepthToSpace."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = 3 * scale * scale
    w = np.full((c, 3, 1, 1), 0.25, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["feat"]),
         helper.make_node("DepthToSpace", ["feat"], ["output"], blocksize=scale, mode="CRD")],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, "H2", "W2"])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def base_dict() -> dict:
    return Sidecar.minimal("m.onnx", scale=4).to_dict()


VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def schema_ok(data: dict) -> bool:
    return VALIDATOR.is_valid(data)


def edgesr_ok(data: dict) -> bool:
    """edgesr's verdict on the fields alone (the memory bound, which depends on this machine, switched off)."""
    with mock.patch.object(V, "available_memory_bytes", lambda: None):
        try:
            Sidecar.from_dict(json.loads(json.dumps(data)))
        except InvalidSidecarError:
            return False
    return True


# ---- the published schema ------------------------------------------------------------------------------
def test_schema_ships_with_the_package_and_states_the_same_bounds() -> None:
    assert schema_path().is_file() and schema_path().parent.name == "artifacts"
    props = load_schema()["properties"]
    for name, (lo, hi) in (("scale", V.SCALE_RANGE), ("alignment", V.ALIGNMENT_RANGE),
                           ("min_size", V.MIN_SIZE_RANGE), ("halo", V.HALO_RANGE)):
        assert (props[name]["minimum"], props[name]["maximum"]) == (lo, hi), name
    tensor = load_schema()["$defs"]["tensor"]["properties"]
    assert tuple(tensor["dtype"]["enum"]) == V.DTYPES and tuple(tensor["layout"]["enum"]) == V.LAYOUTS
    assert tuple(props["artifact"]["properties"]["format"]["enum"]) == V.FORMATS
    assert schema_ok(base_dict()) and edgesr_ok(base_dict())


# ---- property tests over the fields ----------------------------------------------------------------------
INTS = st.one_of(st.integers(-10, 5000), st.integers(-(2 ** 40), 2 ** 40), st.sampled_from([0, 1, 16, 17, 1024, 1025,
                                                                                            4096, 4097, 100000]))
ANY_SCALAR = st.one_of(INTS, st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8), st.booleans(),
                       st.none())


@SETTINGS
@given(field=st.sampled_from(["scale", "alignment", "min_size", "halo"]), value=st.one_of(INTS, ANY_SCALAR))
def test_geometry_bounds_agree_with_the_schema(field: str, value) -> None:
    data = {**base_dict(), field: value}
    if isinstance(value, float) and value.is_integer() and not isinstance(value, bool):
        return  # 4.0 is an integer to JSON readers but not to the schema's "integer" in every draft
    assert edgesr_ok(data) == schema_ok(data), (field, value)


@SETTINGS
@given(field=st.sampled_from(["dtype", "layout", "color", "value_range", "name", "shape"]),
       value=st.one_of(ANY_SCALAR, st.sampled_from(["float32", "float16", "uint8", "int8", "NCHW", "NHWC", "nchw",
                                                    "RGB", "BGR", ""]),
                       st.lists(st.one_of(st.integers(-2, 300), st.floats(-1, 300), st.text(max_size=3)),
                                max_size=5)))
def test_tensor_fields_never_crash_and_schema_refusals_are_refused(field: str, value) -> None:
    data = base_dict()
    data["inputs"][0][field] = value
    data["outputs"][0][field] = value
    accepted = edgesr_ok(data)  # never anything but accept or InvalidSidecarError
    if not schema_ok(data):
        assert not accepted, (field, value)


@SETTINGS
@given(scale=st.integers(1, 16), align=st.integers(1, 1024), min_size=st.integers(1, 4096), halo=st.integers(0, 1024),
       io=st.sampled_from(V.IO_KINDS), layout=st.sampled_from(V.LAYOUTS))
def test_valid_sidecars_round_trip(scale, align, min_size, halo, io, layout) -> None:
    side = Sidecar.minimal("m.onnx", scale=scale, io=io, layout=layout, min_size=min_size, alignment=align, halo=halo)
    try:
        V.validate_sidecar(side)
    except InvalidSidecarError as exc:  # only the memory bound may refuse in-schema values
        assert "available memory" in str(exc)
        return
    back = Sidecar.from_json(side.to_json())
    assert back.to_dict() == side.to_dict() and schema_ok(side.to_dict())


def test_consistency_beyond_the_schema() -> None:
    data = base_dict()
    data["inputs"][0]["dtype"] = "uint8"  # io float01, range 0..1: a uint8 tensor must be 0..255
    with pytest.raises(InvalidSidecarError, match="value_range of a uint8 tensor must be"):
        Sidecar.from_dict(data)
    data = base_dict()
    data["export"]["io"] = "float255"  # the value ranges still say 0..1
    with pytest.raises(InvalidSidecarError, match="contradicts export.io 'float255'"):
        Sidecar.from_dict(data)
    data = {**base_dict(), "shape_profile": {"min": [1, 3, 64, 64], "opt": [1, 3, 32, 32], "max": [1, 3, 128, 128]}}
    with pytest.raises(InvalidSidecarError, match="min <= opt <= max"):
        Sidecar.from_dict(data)
    with pytest.raises(InvalidSidecarError, match="artifact.file '../x.onnx' must be a plain file name"):
        Sidecar.from_dict({**base_dict(), "artifact": {"file": "../x.onnx", "format": "onnx"}})


def test_memory_bound_refuses_what_the_machine_cannot_hold() -> None:
    side = Sidecar.minimal("m.onnx", scale=16, min_size=4096, alignment=1024)
    with pytest.raises(InvalidSidecarError, match="available memory"):
        V.validate_sidecar(side, memory_bytes=8 << 30)
    V.validate_sidecar(Sidecar.minimal("m.onnx", scale=4, min_size=15), memory_bytes=64 << 20)


# ---- naming --------------------------------------------------------------------------------------------
def test_sidecar_names_do_not_collide_between_formats(tmp_path: Path) -> None:
    names = {sidecar_path_for(tmp_path / f"rlfn_x4{s}").name for s in (".onnx", ".ort", ".param", ".pte", ".engine")}
    assert names == {"rlfn_x4.onnx.json", "rlfn_x4.ort.json", "rlfn_x4.param.json", "rlfn_x4.pte.json",
                     "rlfn_x4.engine.json"}


def test_legacy_stem_sidecar_is_read_only_when_it_names_the_artifact(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "m.onnx")
    side = Sidecar.minimal(model, scale=2)
    side.save(tmp_path)
    sidecar_path_for(model).rename(tmp_path / "m.json")  # where edgesr < schema 1.1 wrote it
    with pytest.warns(DeprecationWarning, match="legacy sidecar name"):
        assert Sidecar.for_artifact(model).scale == 2
    other = tiny_onnx(tmp_path / "m.ort")  # another format's artifact of the same stem
    assert Sidecar.for_artifact(other) is None


# ---- files against the sidecar --------------------------------------------------------------------------
def test_mismatched_pair_is_refused_naming_both_files(tmp_path: Path) -> None:
    from edgesr.runtimes import create_runner

    old = tiny_onnx(tmp_path / "old.onnx", scale=2)
    Sidecar.minimal(old, scale=2).save(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(old.read_bytes())
    side = Sidecar.minimal(model, scale=2)
    side.save(tmp_path)
    tiny_onnx(model, scale=3)  # a new model file beside the old sidecar, as a crash or a hand copy leaves it
    with pytest.raises(ArtifactMismatchError) as info:
        create_runner(model).activate()
    assert str(model) in str(info.value) and str(sidecar_path_for(model)) in str(info.value)
    os.environ["EDGESR_SKIP_SHA256"] = "1"
    try:  # skipping the hash keeps the size check, which this file also fails
        with pytest.raises(ArtifactMismatchError, match="bytes"):
            create_runner(model).activate()
    finally:
        del os.environ["EDGESR_SKIP_SHA256"]


def test_wrong_scale_is_an_invalid_sidecar_not_a_missing_one(tmp_path: Path) -> None:
    from edgesr.runtimes import create_runner

    model = tiny_onnx(tmp_path / "m.onnx", scale=2)
    Sidecar.minimal(model, scale=4).save(tmp_path)
    runner = create_runner(model)
    with pytest.raises(InvalidSidecarError, match=r"says scale 4, but .* 16x16 input into 32x32 \(scale 2\)"):
        runner.infer(np.zeros((1, 3, 16, 16), np.float32))


def test_input_name_must_exist_in_the_artifact(tmp_path: Path) -> None:
    from edgesr.runtimes import create_runner

    model = tiny_onnx(tmp_path / "m.onnx")
    Sidecar.minimal(model, scale=2, input_name="lr").save(tmp_path)
    with pytest.raises(InvalidSidecarError, match="'lr' does not exist in the artifact"):
        create_runner(model).activate()


# ---- a hostile sidecar ----------------------------------------------------------------------------------
_LOAD = textwrap.dedent("""
    import resource, sys, time
    from edgesr.runtimes import create_runner          # imports first: the refusal is what is timed
    runner = create_runner(sys.argv[1])
    start = time.perf_counter()
    try:
        runner.activate()
        outcome = "accepted"
    except Exception as exc:
        outcome = type(exc).__name__ + ": " + str(exc)
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: Linux carries the forking parent's peak (pytest's) over exec into ru_maxrss
    hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(f"{seconds:.4f} {hwm_kb / 1024:.1f}")
    print(outcome)
""")
_CLI = textwrap.dedent("""
    import resource, subprocess, sys, time
    start = time.perf_counter()
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    print(f"{proc.returncode} {time.perf_counter() - start:.3f} "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f}")
    sys.stderr.write(proc.stderr)
""")


def _child(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "EDGESR_OFFLINE": "1"})


def test_hostile_sidecar_is_refused_quickly_without_memory(tmp_path: Path) -> None:
    """min_size = alignment = 100000 once drove a process to 22 GB; now the sidecar is refused on load. The time
    and peak memory are measured in a child process and printed; only the refusal and a generous memory bound
    are asserted."""
    import hashlib

    from PIL import Image

    model = tiny_onnx(tmp_path / "m.onnx")
    data = Sidecar.minimal(model, scale=2).to_dict()
    data.update(min_size=100000, alignment=100000)
    data["artifact"].update(bytes=model.stat().st_size, sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    sidecar_path_for(model).write_text(json.dumps(data))

    res = _child(_LOAD, str(model))
    (numbers, outcome) = res.stdout.strip().splitlines()[-2:]
    seconds, peak_mb = (float(v) for v in numbers.split())
    print(f"\nhostile sidecar refused by the runner in {seconds * 1000:.1f} ms; child peak RSS {peak_mb:.0f} MB")
    assert outcome.startswith("InvalidSidecarError") and "min_size 100000 is outside 1..4096" in outcome
    assert peak_mb < 1000

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    res = _child(_CLI, sys.executable, "-m", "edgesr.cli.main", "upscale", "--artifact", str(model),
                 str(tmp_path / "in.png"), str(out))
    code, seconds, peak_mb = res.stdout.split()
    print(f"edgesr upscale --artifact with it: exit {code} after {float(seconds):.1f} s (interpreter and imports "
          f"included), peak RSS {float(peak_mb):.0f} MB")
    assert int(code) == 2 and "Error: sidecar" in res.stderr and "min_size 100000" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()
    assert float(peak_mb) < 1500  # generous: python + torch + onnxruntime are most of it


def test_huge_or_deep_sidecar_files_are_refused(tmp_path: Path) -> None:
    model = tiny_onnx(tmp_path / "m.onnx")
    sidecar_path_for(model).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(InvalidSidecarError, match="not valid JSON|must be a JSON object"):
        Sidecar.for_artifact(model)
    with open(sidecar_path_for(model), "wb") as f:
        f.truncate(17 << 20)
    with pytest.raises(InvalidSidecarError, match="at most"):
        Sidecar.for_artifact(model)
    with pytest.raises(UserInputError, match="has no sidecar"):
        sidecar_path_for(model).unlink()
        Sidecar.for_artifact(model, required=True)
