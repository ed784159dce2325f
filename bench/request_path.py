#!/usr/bin/env python3
"""Throughput of the request path: queries and batched upserts over REST (and gRPC), on one
local `ametist serve` (loopback only), at measured recall.

    python3 bench/request_path.py target/release/ametist [--n 25000] [--dim 384] [--partitions 2]
        [--efs 16,24,32,48,64,96] [--threads 2] [--connections 16] [--seconds 10] [--grpc]

The setting of issue 20: a 25k x 384 collection of sentence-embedding-like unit vectors
(`make_embeddings.py`'s seeded mixture, exact cosine ground truth by numpy), 2 partitions,
m 16, ef_construct 200. Steps:

1. upserts: `--clients` concurrent clients send `wait=true` batches of 100 points, then of
   1,000 points (bodies serialised beforehand), until the collection holds `--n` points;
   points/s and request p50/p99 per batch size;
2. recall@10 of the queries at each `hnsw_ef` in `--efs` (against the exact top 10);
3. queries/s and p50/p99 under `wrk` (`--threads` x `--connections`, `--seconds` each) at each
   ef, the bodies cycling over the query set; and one connection alone (latency);
4. with `--grpc`: the same queries over gRPC (`qdrant.Points/Query`), from `--grpc-procs`
   processes of the Python gRPC client each holding `--connections` calls in flight. The
   Python client costs far more CPU per call than wrk, and shares the 2 cores with the
   server, so these figures bound the server from below.

`wrk` comes from Debian's packages (`apt-get install wrk`); numpy and, for `--grpc`,
`grpcio` and `qdrant-client` from PyPI (tests/python/requirements.txt has them).
"""

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = "bench"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(base, method, path, body=None, timeout=600):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
        return json.loads(raw) if raw.startswith(b"{") else raw


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def upserts(port, bodies, clients):
    """Sends `bodies` (serialised upserts) from `clients` threads; latencies in seconds."""
    lat, lock, queue = [], threading.Lock(), list(reversed(bodies))

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            t0 = time.perf_counter()
            conn.request("PUT", f"/collections/{COLLECTION}/points?wait=true", body,
                         {"content-type": "application/json"})
            r = conn.getresponse()
            answer = r.read()
            if r.status != 200:
                raise RuntimeError(f"upsert answered {r.status}: {answer[:300]!r}")
            with lock:
                lat.append(time.perf_counter() - t0)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, sorted(lat)


def pct(sorted_secs, q):
    return sorted_secs[min(len(sorted_secs) - 1, int(q * len(sorted_secs)))] * 1000


def query_body(v, ef):
    return json.dumps({"query": [round(float(x), 6) for x in v], "limit": 10, "params": {"hnsw_ef": ef}})


def wrk(port, bodies, threads, connections, seconds):
    """queries/s, p50 ms, p99 ms and errors of `wrk` posting `bodies` in turn."""
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "q.lua")
        with open(script, "w") as f:
            f.write("bodies = {\n")
            for b in bodies:
                f.write("[==[" + b + "]==],\n")
            f.write("}\ncounter = 0\n")
            f.write(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                "request = function()\n  counter = counter + 1\n"
                "  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])\nend\n"
                "done = function(summary, latency, requests)\n"
                '  io.write(string.format("ERRORS %d %d\\n", summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
                '  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))\n'
                "end\n"
            )
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script,
             f"http://127.0.0.1:{port}/collections/{COLLECTION}/points/query"],
            capture_output=True, text=True, check=True).stdout
    qps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"P50 ([\d.]+)", out).group(1))
    p99 = float(re.search(r"P99 ([\d.]+)", out).group(1))
    status_err, sock_err = map(int, re.search(r"ERRORS (\d+) (\d+)", out).groups())
    return qps, p50, p99, status_err + sock_err


def grpc_worker(port, queries, ef, seconds, in_flight, out):
    """One process of the gRPC load: `in_flight` calls at once for `seconds`."""
    import asyncio

    import grpc
    from qdrant_client import grpc as pb

    async def run():
        lat = []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pb.PointsStub(ch)
            reqs = [pb.QueryPoints(collection_name=COLLECTION, limit=10, params=pb.SearchParams(hnsw_ef=ef),
                                   query=pb.Query(nearest=pb.VectorInput(dense=pb.DenseVector(data=q.tolist()))))
                    for q in queries]
            deadline = time.perf_counter() + seconds

            async def one(k):
                i = k
                while time.perf_counter() < deadline:
                    t0 = time.perf_counter()
                    await stub.Query(reqs[i % len(reqs)])
                    lat.append(time.perf_counter() - t0)
                    i += in_flight

            await asyncio.gather(*(one(k) for k in range(in_flight)))
        return lat

    lat = asyncio.run(run())
    with open(out, "w") as f:
        json.dump(lat, f)


def grpc_load(port, queries, ef, seconds, procs, in_flight):
    with tempfile.TemporaryDirectory() as d:
        outs = [os.path.join(d, f"{k}.json") for k in range(procs)]
        np.save(os.path.join(d, "queries.npy"), queries)
        env = dict(os.environ, BENCH_HTTP_QUERIES=os.path.join(d, "queries.npy"))
        ps = [subprocess.Popen([sys.executable, __file__, "--grpc-worker", str(port), str(ef), str(seconds),
                                str(in_flight), outs[k]], env=env) for k in range(procs)]
        for p in ps:
            p.wait()
        lat = sorted(x for o in outs for x in json.load(open(o)))
    return len(lat) / seconds, pct(lat, 0.5), pct(lat, 0.99)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--n", type=int, default=25_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--efs", default="16,24,32,48,64,96")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--clients", type=int, default=8, help="concurrent upsert clients")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--grpc", action="store_true")
    ap.add_argument("--grpc-procs", type=int, default=2)
    ap.add_argument("--data", help="a directory make_embeddings.py wrote (else one is made)")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ametist-http-bench-")
    data = a.data or os.path.join(work, "data")
    if not a.data:
        subprocess.run([sys.executable, os.path.join(HERE, "make_embeddings.py"), data, "--dim", str(a.dim),
                        "--n", str(a.n), "--queries", str(a.queries)], check=True)
    base = read_vecs(os.path.join(data, "base.fvecs"), np.float32)[: a.n]
    queries = read_vecs(os.path.join(data, "query.fvecs"), np.float32)
    gt = read_vecs(os.path.join(data, "gt.ivecs"), np.int32)[:, :10]

    port, grpc_port = free_port(), free_port()
    env = dict(os.environ, RUST_LOG="error")
    env.pop("AMETIST_CONFIG", None)
    server = subprocess.Popen(
        [a.binary, "serve", "--port", str(port), "--data-dir", os.path.join(work, "db"),
         "--set", f"server.grpc_port={grpc_port}"], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                call(url, "GET", "/healthz")
                break
            except OSError:
                time.sleep(0.05)
        call(url, "PUT", f"/collections/{COLLECTION}", {
            "vectors": {"size": a.dim, "distance": "Cosine"}, "shard_number": a.partitions,
            "hnsw_config": {"m": 16, "ef_construct": 200}})

        print(f"# {a.n} x {a.dim}, {a.partitions} partitions, m 16, ef_construct 200; {a.clients} upsert clients")
        half = a.n // 2
        for batch, lo, hi in [(100, 0, half), (1000, half, a.n)]:
            bodies = [json.dumps({"points": [{"id": i, "vector": [round(float(x), 6) for x in base[i]]}
                                             for i in range(s, min(s + batch, hi))]})
                      for s in range(lo, hi, batch)]
            secs, lat = upserts(port, bodies, a.clients)
            print(f"upsert batch {batch:>5}: {(hi - lo) / secs:>9,.0f} points/s   "
                  f"p50 {pct(lat, 0.5):7.1f} ms   p99 {pct(lat, 0.99):7.1f} ms")
        assert call(url, "POST", f"/collections/{COLLECTION}/points/count", {"exact": True})["result"]["count"] == a.n

        print(f"\n# queries: wrk -t{a.threads} -c{a.connections} -d{a.seconds}s; one connection alone for latency")
        print("| ef | recall@10 | REST q/s | p50 / p99 ms | 1 conn q/s | p50 / p99 ms |"
              + (" gRPC q/s | p50 / p99 ms |" if a.grpc else ""))
        print("|---|---|---|---|---|---|" + ("---|---|" if a.grpc else ""))
        for ef in [int(e) for e in a.efs.split(",")]:
            bodies = [query_body(q, ef) for q in queries]
            # A new connection each time: the server closes one idle for server.header_read_timeout.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            hits = 0
            for q, b in enumerate(bodies):
                conn.request("POST", f"/collections/{COLLECTION}/points/query", b, {"content-type": "application/json"})
                got = {p["id"] for p in json.loads(conn.getresponse().read())["result"]["points"]}
                hits += len(got & set(gt[q].tolist()))
            conn.close()
            recall = hits / (10 * len(bodies))
            qps, p50, p99, errors = wrk(port, bodies, a.threads, a.connections, a.seconds)
            one, one50, one99, errors1 = wrk(port, bodies, 1, 1, max(3, a.seconds // 2))
            if errors or errors1:
                print(f"  ({errors + errors1} failed requests at ef {ef})")
            row = f"| {ef} | {recall:.4f} | {qps:,.0f} | {p50:.2f} / {p99:.2f} | {one:,.0f} | {one50:.2f} / {one99:.2f} |"
            if a.grpc:
                g, g50, g99 = grpc_load(grpc_port, queries, ef, a.seconds, a.grpc_procs, a.connections)
                row += f" {g:,.0f} | {g50:.2f} / {g99:.2f} |"
            print(row, flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--grpc-worker":
        port, ef, seconds, in_flight, out = sys.argv[2:7]
        queries = np.load(os.environ["BENCH_HTTP_QUERIES"])
        grpc_worker(int(port), queries, int(ef), int(seconds), int(in_flight), out)
    else:
        main()
