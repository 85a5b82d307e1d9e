"""Environment record: complete enough to reproduce a result, nothing personal."""
from __future__ import annotations

import getpass
import json
import os
import re
import socket

import pytest

from edgesr.bench.env import collect_env, env_slug, slugify_device


def test_collect_env_is_complete_and_serialisable():
    env = collect_env(threads=2)
    json.dumps(env)
    assert env["threads"] == 2
    assert env["cpu"]["model"] and env["cpu"]["logical_cpus"] >= 1
    assert env["versions"]["python"] and env["versions"]["torch"] and env["versions"]["onnxruntime"]
    assert "openvino" in env["versions"] and "tensorrt" in env["versions"]
    if env["cpu"]["arch"] in ("x86_64", "AMD64"):
        assert {"avx2", "avx512f", "amx_bf16"} <= set(env["cpu"]["isa"])
    assert isinstance(env["gpus"], list)


def test_no_personal_information():
    text = json.dumps(collect_env()).lower()
    host = socket.gethostname().lower()
    if len(host) >= 4:
        assert host not in text
    try:
        user = getpass.getuser().lower()
    except Exception:
        user = ""
    if len(user) >= 4:
        assert user not in text
    assert os.path.expanduser("~").lower() not in text


@pytest.mark.parametrize("name,slug", [
    ("Intel(R) Xeon(R) Platinum 8480+", "xeon-8480"),
    ("AMD EPYC 7763 64-Core Processor", "epyc-7763"),
    ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "xeon-e5-2680-v4"),
    ("13th Gen Intel(R) Core(TM) i7-13700K", "core-i7-13700k"),
    ("NVIDIA H100 80GB HBM3", "h100-80gb-hbm3"),
    ("Intel(R) Xeon(R) Processor", "xeon"),
])
def test_slugify_device(name, slug):
    assert slugify_device(name) == slug


def test_env_slug():
    env = {"cpu": {"model": "Intel(R) Xeon(R) Platinum 8480+"}, "threads": 4, "gpus": []}
    assert env_slug(env) == "cpu-xeon-8480-4t"
    assert env_slug(env, threads=2) == "cpu-xeon-8480-2t"
    assert env_slug({**env, "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}, device="cuda") == "gpu-h100-80gb-hbm3"
    assert env_slug(env, device="cuda:0").startswith("gpu-")
    assert re.fullmatch(r"cpu-[a-z0-9-]+-\d+t", env_slug())
