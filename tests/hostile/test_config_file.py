"""Huge, negative and malformed values in every field of `ametist.yaml`: each is either
refused by `ametist config` (which loads and checks the file exactly as `serve` does),
naming the field, or accepted exactly as given. Nothing is accepted and then changed or
crashed on (issue 21, item 1: every config number is checked on the config file too)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from ametist_server import ametist_binary

HUGE = ["-1", "18446744073709551616", "1e400", "99999999999999999999999", "4294967296", "0", "x", "[]", "{}"]
DURATIONS = ["0s", "-1s", "100000000000y", "1ms", "x"]


def run_config(tmp_path, *sets: str) -> subprocess.CompletedProcess:
    args = [str(ametist_binary()), "config"]
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=30)


def leaves(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from leaves(v, path)
        else:
            yield path, v


def lookup(tree: dict, path: str):
    for k in path.split("."):
        tree = tree[k]
    return tree


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    out = run_config(tmp_path_factory.mktemp("cfg"))
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_every_numeric_field_is_refused_or_kept_exactly(defaults, tmp_path):
    checked = 0
    for path, default in leaves(defaults):
        is_duration = isinstance(default, str) and default[-1:] in "sm" and default[:-1].isdigit()
        if isinstance(default, bool) or not (isinstance(default, int) or is_duration or default is None):
            continue
        if path in ("partitions.index.quantile", "service.api_key", "remoting.advertise"):
            continue  # not numbers (or checked by their own tests)
        for value in DURATIONS if is_duration else HUGE:
            out = run_config(tmp_path, f"{path}={value}")
            if out.returncode != 0:
                assert path in out.stderr or path.split(".")[-1] in out.stderr, f"{path}={value}: {out.stderr}"
                assert "panicked" not in out.stderr, out.stderr
            else:
                got = lookup(yaml.safe_load(out.stdout), path)
                assert str(got) == value or got == yaml.safe_load(value), f"{path}={value} was kept as {got!r}"
            checked += 1
    assert checked > 100, checked
