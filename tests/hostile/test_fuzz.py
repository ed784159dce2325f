"""Schemathesis over the server's own OpenAPI document (`GET /openapi.json`): every
operation gets a bounded number of generated requests, valid by the document and not, and
no answer may be a 5xx. Answers must also match the document (status code, content type,
body schema), so the document cannot drift from what the server does.

Each operation is one test, so the reference digest (conftest) is checked after each.
Generated requests are steered toward real code: most go to `fuzz`, a collection with
points, payloads, a text index and named vectors, rather than stopping at "collection not
found"; dense vectors are often cut to its sizes (now and then with a value whose square
overflows f32), filter keys pointed at its payload fields, point ids at its points,
snapshot names at real snapshots; create tries names at the edges of what is allowed.
Deleting and recovering work on a scratch collection made for them; `reference` is never
named.

Bounded: `AMETIST_FUZZ_EXAMPLES` valid examples per operation, and half as many invalid
ones (default 25: one and a half to three minutes for the 55 operations on a debug build
and two cores). The seed is printed with the counts of answers per operation;
`AMETIST_FUZZ_SEED=<seed>` replays a run.
"""
from __future__ import annotations

import itertools
import os
import random
import time
from pathlib import Path

import hypothesis
import hypothesis.errors
import httpx
import pytest
import requests
import yaml
from hypothesis import HealthCheck, Phase, strategies as st

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import REFERENCE

DOCUMENT = Path(__file__).resolve().parents[2] / "crates/ametist-server/src/api/openapi.yaml"
SEED = int(os.environ.get("AMETIST_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
EXAMPLES = int(os.environ.get("AMETIST_FUZZ_EXAMPLES", "25"))
REQUEST_TIMEOUT = 30.0
# With AMETIST_FUZZ_VERBOSE=1, the refusals' messages are listed too (why requests stop short).
VERBOSE = os.environ.get("AMETIST_FUZZ_VERBOSE") == "1"
errors: dict[str, set[str]] = {}

SHARED = "fuzz"  # where most requests go
SCRATCH = "fuzz-scratch"  # what deletes and recovers work on
DIMS = {"": 4, "img": 3}  # the shared collection's dense vectors
PAYLOAD_KEYS = ["group", "n", "text", "tags", "nested", "nested[].x", "geo"]
# Names the fuzzer must not reach: the reference collection, and names that are other routes.
FORBIDDEN_NAMES = {REFERENCE, "aliases"}
# Names at and past the edges of what a collection may be called (at most 200 bytes of
# letters, digits, `-`, `_` and `.`, not starting with `.`), for create to try.
EDGE_NAMES = ["e" * 200, "e" * 201, "e" * 255, "e.e", "-", "_e", ".e", "..", "e e", "é"]
# Finite values whose squares, products or sums overflow f32, mixed into vectors.
EXTREME_VALUES = [1e38, -3.4e38, 1.8e19, -1.9e19, 6e17, 1e-45, -0.0]

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _labels() -> list[str]:
    """`METHOD /path` of every operation, read from the document in the source tree (the
    test then checks the server serves the same document)."""
    doc = yaml.safe_load(DOCUMENT.read_text())
    methods = {"get", "put", "post", "delete", "patch"}
    return [f"{m.upper()} {p}" for p, item in doc["paths"].items() for m in item if m in methods]


LABELS = _labels()
_fresh = itertools.count()
snapshots: list[str] = []  # names of the scratch collection's snapshots


def _make_shared(http: httpx.Client) -> None:
    r = http.put(
        f"/collections/{SHARED}",
        json={
            "vectors": {"": {"size": DIMS[""], "distance": "Dot"}, "img": {"size": DIMS["img"], "distance": "Euclid"}},
            "sparse_vectors": {"kw": {"modifier": "idf"}},
            "shard_number": 2,
        },
    )
    assert r.status_code == 200, r.text
    _fill_shared(http)


def _fill_shared(http: httpx.Client) -> None:
    """(Re)writes the shared collection's indexes and points: a fuzzed delete, payload
    change or index change may have taken them, and a fuzzed PATCH may have enabled strict
    mode with limits no real write fits under."""
    r = http.patch(f"/collections/{SHARED}", json={"strict_mode_config": {"enabled": False}})
    assert r.status_code == 200, r.text
    for body in ({"field_name": "text", "field_schema": "text"}, {"field_name": "group", "field_schema": "keyword"}):
        r = http.put(f"/collections/{SHARED}/index", json=body)
        assert r.status_code == 200, r.text
    rng = random.Random(7)
    points = [
        {
            "id": i,
            "vector": {
                "": [rng.uniform(-1, 1) for _ in range(DIMS[""])],
                "img": [rng.uniform(-1, 1) for _ in range(DIMS["img"])],
                "kw": {"indices": [i % 7, 10 + i % 3], "values": [1.0, 0.5]},
            },
            "payload": {
                "group": rng.choice(["a", "b", "c"]),
                "n": i,
                "text": rng.choice(["red fox", "lazy dog", "quick brown fox jumps"]),
                "tags": ["x", "y"][: i % 3],
                "nested": [{"x": i % 4}],
                "geo": {"lon": rng.uniform(-10, 10), "lat": rng.uniform(-10, 10)},
            },
        }
        for i in range(60)
    ]
    r = http.put(f"/collections/{SHARED}/points?wait=true", json={"points": points})
    assert r.status_code == 200, r.text


def _ensure(http: httpx.Client, name: str) -> None:
    """Makes `name` exist: the shared collection with its points, or the scratch one with a
    few points and a snapshot."""
    if http.get(f"/collections/{name}/exists").json()["result"]["exists"]:
        return
    if name == SHARED:
        _make_shared(http)
    else:
        r = http.put(f"/collections/{name}", json={"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 1})
        assert r.status_code == 200, r.text
        points = [{"id": i, "vector": [1.0, i, 0.5, -i], "payload": {"n": i}} for i in range(10)]
        r = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
        assert r.status_code == 200, r.text
        # A snapshot for the recover route to find by name.
        r = http.post(f"/collections/{name}/snapshots")
        assert r.status_code == 200, r.text
        snapshots.append(r.json()["result"]["name"])


@pytest.fixture(scope="module")
def schema(server, http):
    _ensure(http, SHARED)
    # Fetched here rather than with `from_url`, which leaves out the operation that serves
    # the document itself.
    r = http.get("/openapi.json")
    assert r.status_code == 200, r.text
    loaded = schemathesis.openapi.from_dict(r.json())
    served = sorted(op.ok().label for op in loaded.get_all_operations())
    assert served == sorted(LABELS), "the served document is not the one in the source tree"
    return loaded


@pytest.fixture(scope="module")
def tally(request):
    """Answers per operation and status, written out when the module ends."""
    counts: dict[str, dict[int, int]] = {}
    started = time.monotonic()
    yield counts
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    total = sum(sum(c.values()) for c in counts.values())
    lines = [
        f"fuzz: seed {SEED} (replay: AMETIST_FUZZ_SEED={SEED}), {EXAMPLES} examples per operation and mode, "
        f"{total} requests over {len(counts)} operations in {time.monotonic() - started:.0f}s"
    ]
    for label, c in sorted(counts.items()):
        lines.append(f"  {label}: " + ", ".join(f"{s}×{n}" for s, n in sorted(c.items())))
        lines += [f"      {e}" for e in sorted(errors.get(label, ()))[:40]]
    if reporter is not None and capture is not None:
        # Shown whatever the outcome: the seed replays a run, the counts show how far the
        # requests got (2xx: past every check into the engine).
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


def _resize(v: list, n: int, rnd: random.Random) -> list:
    v = (v + [rnd.uniform(-1, 1) for _ in range(n)])[:n]
    if v and rnd.random() < 0.1:
        v[rnd.randrange(len(v))] = rnd.choice(EXTREME_VALUES)
    return v


def _is_dense(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _steer(node, rnd: random.Random, key: str | None = None):
    """Moves a generated body closer to what the shared collection holds, at random: dense
    vectors of its sizes, vector names it has, filter keys of its payload. The shape stays
    what the document allows."""
    if isinstance(node, dict):
        node = dict(node)
        batch_ids, batch_vectors = node.get("ids"), node.get("vectors")
        if key == "batch" and isinstance(batch_ids, list) and isinstance(batch_vectors, list) and rnd.random() < 0.7:
            # As many ids as vectors (and payloads), at least one.
            n = max(1, min(len(batch_ids), len(batch_vectors)))
            node["ids"] = (batch_ids + [0])[:n]
            node["vectors"] = (batch_vectors + [[]])[:n]
            if isinstance(node.get("payloads"), list) and node["payloads"]:
                node["payloads"] = (node["payloads"] * n)[:n]
        using = node.get("using")
        if isinstance(using, str) and rnd.random() < 0.5:
            node["using"] = using = rnd.choice(["", "img", "kw"])
        dim = DIMS.get(using if isinstance(using, str) else "", DIMS[""])
        out = {}
        for k, v in node.items():
            if k in ("query", "nearest", "vector") and _is_dense(v) and rnd.random() < 0.7:
                out[k] = _resize(v, dim, rnd)
                continue
            if k in ("query", "nearest") and type(v) is int and rnd.random() < 0.6:
                v = rnd.randrange(60)  # a point the collection has
            elif k == "key" and isinstance(v, str) and rnd.random() < 0.6:
                v = rnd.choice(PAYLOAD_KEYS)
            elif k == "field" and isinstance(v, str) and rnd.random() < 0.6:
                v = "text"  # the text-indexed field
            elif k == "location" and isinstance(v, str) and snapshots and rnd.random() < 0.5:
                v = rnd.choice(snapshots)  # one of the scratch collection's snapshots
            elif k == "vector" and isinstance(v, dict) and "indices" not in v:
                # A map of vector names: aim some at the collection's own.
                renamed = {}
                for name, vec in v.items():
                    if rnd.random() < 0.5:
                        name = rnd.choice(["", "img"])
                    if _is_dense(vec) and name in DIMS and rnd.random() < 0.8:
                        vec = _resize(vec, DIMS[name], rnd)
                    renamed[name] = _steer(vec, rnd, name)
                out[k] = renamed
                continue
            out[k] = _steer(v, rnd, k)
        return out
    if isinstance(node, list):
        if key == "vectors" and rnd.random() < 0.7:
            return [_resize(v, DIMS[""], rnd) if _is_dense(v) else v for v in node]
        return [_steer(v, rnd, key) for v in node]
    return node


def _collection_for(label: str, generated: str, choice: int) -> str:
    """The collection a request names: mostly the shared one; create, delete and recover
    mostly get collections of their own."""
    method, path = label.split(" ", 1)
    destructive = (method == "DELETE" and path == "/collections/{name}") or path.endswith(("/recover", "/upload"))
    if method == "PUT" and path == "/collections/{name}":
        if choice < 15:
            return SHARED  # exists: 409
        if choice < 35:
            return EDGE_NAMES[choice % len(EDGE_NAMES)]
        return f"fz-new-{next(_fresh)}"
    if destructive:
        return SCRATCH if choice < 85 else f"fz-missing-{next(_fresh)}"
    if choice < 80 or generated in FORBIDDEN_NAMES:
        return SHARED
    return generated


def _strategies(operation):
    modes = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            modes.append((mode.value, operation.as_strategy(generation_mode=mode)))
        except Exception as e:  # an operation with nothing to negate has no negative mode
            print(f"{operation.label}: no {mode.value} strategy ({e})")
    return modes


@pytest.mark.parametrize("label", LABELS)
def test_fuzz_operation(schema, server, http, tally, label):
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    counts = tally.setdefault(label, {})
    session = requests.Session()
    _ensure(http, SHARED)
    _fill_shared(http)

    for mode, strategy in _strategies(operation):

        @hypothesis.seed(SEED)
        @hypothesis.settings(
            # Invalid requests mostly stop at the body parser and cost more to generate.
            max_examples=EXAMPLES if mode == GenerationMode.POSITIVE.value else max(1, EXAMPLES // 2),
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @hypothesis.given(case=strategy, choice=st.integers(0, 99), steer=st.integers(0, 2**32 - 1))
        def run(case, choice, steer):
            if "name" in (case.path_parameters or {}):
                name = _collection_for(label, str(case.path_parameters["name"]), choice)
                if name in (SHARED, SCRATCH):
                    _ensure(http, name)
                case.path_parameters["name"] = name
            rnd = random.Random(steer)
            if "id" in (case.path_parameters or {}) and rnd.random() < 0.6:
                case.path_parameters["id"] = str(rnd.randrange(60))  # a point the collection has
            if "shard_id" in (case.path_parameters or {}) and rnd.random() < 0.6:
                case.path_parameters["shard_id"] = rnd.randrange(2)  # a partition the collections have
            if isinstance(case.body, (dict, list)):
                case.body = _steer(case.body, rnd)
            try:
                response = case.call(base_url=server.url, session=session, timeout=REQUEST_TIMEOUT)
            except Exception as e:
                alive = server.proc.poll() is None
                raise AssertionError(f"{label} ({mode}): no answer ({e!r}); server alive: {alive}\n{server.log()}")
            counts[response.status_code] = counts.get(response.status_code, 0) + 1
            if VERBOSE and 400 <= response.status_code < 500:
                errors.setdefault(label, set()).add(f"{response.status_code} {response.text[:160]}")
            assert server.proc.poll() is None, f"the server exited:\n{server.log()}"
            case.validate_response(response, checks=CHECKS)
            name = (case.path_parameters or {}).get("name", "")
            if response.status_code == 200 and label == "PUT /collections/{name}" and name != SHARED:
                # Collections the fuzzer made go at once: they may hold up to 1024 partitions.
                r = http.delete(f"/collections/{name}")
                assert r.status_code == 200, f"deleting {name!r}: {r.status_code} {r.text}"

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing to generate: an operation whose only input is a free-form string
            # has no invalid variant (negative mode), and that is not a finding.
            assert mode == GenerationMode.NEGATIVE.value, f"{label}: no valid request could be generated"
        except BaseException as e:
            e.add_note(f"fuzz seed {SEED} (replay: AMETIST_FUZZ_SEED={SEED}), mode {mode}")
            raise
