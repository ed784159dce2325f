#!/usr/bin/env python3
"""Full-text and hybrid search benchmark on a real text corpus: the WordNet glosses.

    apt-get install -y wordnet-base                    # the corpus (Debian)
    pip install numpy                                  # the only Python dependency
    cargo build --release -p ametist-server
    python3 bench/text_bench.py target/release/ametist --partitions 1,2

The corpus: every synset of WordNet 3.0 (`/usr/share/wordnet/data.{noun,verb,adj,adv}`,
117,659 synsets) becomes one document, id = its line number over the four files in that
order, text = its lemmas (underscores as spaces) then its gloss, e.g.
"physical entity; an entity that has physical existence".

The dense vector (64 dims, cosine) is a deterministic embedding, a hashed bag of words
projected at random: every lowercase `\\w+` token t gets a fixed standard-normal vector
drawn from a generator seeded with the first 8 bytes of blake2b(t); a document's vector
is the sum over its tokens (with repeats), normalised. Queries get the same embedding.

What is measured, for each partition count, against a fresh `ametist serve` (the binary
given) on a temporary data directory, through its REST API:

* **indexing**: upserting every document (batches of --batch, `wait=true`, one client,
  request bodies encoded before the clock starts) into a collection whose `text` field
  has a BM25 index (created before the upserts); the time `create_payload_index` (text)
  takes on that full collection (the index dropped, then made again); and, for comparison,
  the first --prefix documents upserted into a fresh collection without a text index
  against the same documents' share of the first run. The HNSW graph of the dense vectors
  is built during the upserts in both cases (default parameters: m 16, ef_construction 200).
* **queries**: keyword only (`{"bm25": {"field": "text", "text": q}}`, limit 10), dense
  only (the query's embedding, limit 10) and hybrid (prefetch dense limit 20 + bm25 limit 20,
  fused with rrf, limit 10), with one client and two concurrent client processes, QPS
  and latency p50/p99 as the client sees it, the server's own time for the request (the
  envelope's `time`, from the handler's start to the answer), the server process's CPU
  time per query (from /proc: HTTP, JSON, coordinator and partition threads) and the
  client processes' CPU time per query. `GET /` (no engine work at all) is measured the
  same way as the floor of the REST path.

Queries are drawn deterministically (--seed): a random document, then 1 to 3 distinct
random tokens of at least 3 characters from its text.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDNET = Path("/usr/share/wordnet")
POS_FILES = ("noun", "verb", "adj", "adv")
TOKEN = re.compile(r"\w+")
DIM = 64
FIELD = "text"


# ----------------------------------------------------------------------------- corpus


def load_glosses(root: Path, limit: int | None) -> list[dict]:
    """One document per synset line of data.{noun,verb,adj,adv} (license lines skipped)."""
    docs = []
    for pos in POS_FILES:
        path = root / f"data.{pos}"
        if not path.exists():
            sys.exit(f"{path} is missing: apt-get install -y wordnet-base")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                head, _, gloss = line.partition(" | ")
                fields = head.split()
                # offset lex_filenum ss_type w_cnt(hex) [word lex_id]...
                w_cnt = int(fields[3], 16)
                words = [fields[4 + 2 * i] for i in range(w_cnt)]
                # Adjective markers such as "(a)" or "(ip)" are not part of the lemma.
                lemmas = [re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in words]
                text = ", ".join(lemmas) + "; " + gloss.strip()
                docs.append({"id": len(docs), "pos": pos, "text": text})
                if limit is not None and len(docs) >= limit:
                    return docs
    return docs


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


class Embedder:
    """Hashed bag of words, random projection to DIM dims (see the module docstring)."""

    def __init__(self, dim: int = DIM):
        self.dim = dim
        self.cache: dict[str, np.ndarray] = {}

    def token_vector(self, t: str) -> np.ndarray:
        v = self.cache.get(t)
        if v is None:
            seed = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            self.cache[t] = v
        return v

    def embed(self, text: str) -> list[float]:
        v = np.zeros(self.dim, np.float32)
        for t in tokens(text):
            v += self.token_vector(t)
        n = float(np.linalg.norm(v))
        if n == 0.0:
            v[0] = 1.0
        else:
            v /= n
        return [float(x) for x in v]


def make_queries(docs: list[dict], n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        d = docs[rng.randrange(len(docs))]
        toks = sorted({t for t in tokens(d["text"]) if len(t) >= 3})
        if not toks:
            continue
        out.append(" ".join(rng.sample(toks, min(len(toks), rng.randint(1, 3)))))
    return out


# ----------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str, partitions: int):
        self.tmp = tempfile.mkdtemp(prefix="ametist-textbench-")
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMETIST")}
        env["RUST_LOG"] = "warn"
        self.log = open(Path(self.tmp) / "server.log", "wb")
        self.proc = subprocess.Popen(
            [os.path.abspath(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(Path(self.tmp) / "data"), "--set", f"partitions.count={partitions}",
             "--set", "server.grpc_port=null"],
            cwd=self.tmp, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"ametist serve exited: {(Path(self.tmp) / 'server.log').read_text()[-2000:]}")
            try:
                Http(self.port).call("GET", "/")
                return
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("ametist serve did not start")
                time.sleep(0.05)

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Http:
    """A keep-alive HTTP/1.1 connection (stdlib only: the client should cost little)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, method: str, path: str, body: bytes | dict | None = None) -> dict:
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        headers = {"content-type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        raw = r.read()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:500]!r}")
        return json.loads(raw)


# ----------------------------------------------------------------------------- measuring


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _worker(port, method, path, bodies, barrier, out):
    h = Http(port)
    lat, srv = [], []
    barrier.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for b in bodies:
        s = time.perf_counter()
        v = h.call(method, path, b)
        lat.append(time.perf_counter() - s)
        srv.append(v.get("time", 0.0))
    out.put((t0, time.perf_counter(), lat, srv, time.process_time() - c0))


def run_queries(server: Server, method: str, path: str, bodies: list, clients: int, warmup: int = 50):
    h = Http(server.port)
    for b in bodies[:warmup]:
        h.call(method, path, b)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    shares = [bodies[i::clients] for i in range(clients)]
    cpu0 = server.cpu_seconds()
    procs = [ctx.Process(target=_worker, args=(server.port, method, path, s, barrier, out)) for s in shares]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    cpu = server.cpu_seconds() - cpu0
    wall = max(r[1] for r in results) - min(r[0] for r in results)
    lat = [x for r in results for x in r[2]]
    srv = [x for r in results for x in r[3]]
    n = len(lat)
    return {
        "n": n,
        "qps": n / wall,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "server_p50_ms": pct(srv, 50) * 1e3,
        "server_cpu_ms_per_q": cpu / n * 1e3,
        "client_cpu_ms_per_q": sum(r[4] for r in results) / n * 1e3,
    }


def upsert_all(server: Server, name: str, batches: list[bytes], label: str) -> list[float]:
    """Seconds since the start after each batch."""
    h = Http(server.port)
    t = time.perf_counter()
    done = []
    for i, b in enumerate(batches):
        for attempt in range(5):
            try:
                h.call("PUT", f"/collections/{name}/points?wait=true", b)
                break
            except RuntimeError as e:
                # 429/503 (overload, or wait=true's write_timeout on a starved machine): the
                # write is queued or refused as a whole; upserts are idempotent, so retry.
                if attempt == 4 or not (" 503 " in str(e) or " 429 " in str(e)):
                    raise
                print(f"  {label}: batch {i} answered {e}; retrying", flush=True)
                h = Http(server.port)
                time.sleep(1)
        done.append(time.perf_counter() - t)
        if (i + 1) % 20 == 0:
            print(f"  {label}: {i + 1}/{len(batches)} batches, {done[-1]:.0f} s", flush=True)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary", help="the ametist binary (a release build)")
    ap.add_argument("--partitions", default="1,2")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N documents")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--prefix", type=int, default=30000,
                    help="documents upserted again into a collection without a text index, for comparison")
    ap.add_argument("--queries", type=int, default=2000, help="per query kind and client setup")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--wordnet", default=str(WORDNET))
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    t = time.perf_counter()
    docs = load_glosses(Path(args.wordnet), args.limit)
    emb = Embedder()
    vectors = [emb.embed(d["text"]) for d in docs]
    n_tokens = sum(len(tokens(d["text"])) for d in docs)
    print(f"corpus: {len(docs)} documents, {n_tokens} tokens ({n_tokens / len(docs):.1f}/doc), "
          f"{len(emb.cache)} distinct; embedded in {time.perf_counter() - t:.1f} s", flush=True)
    batches = []
    for i in range(0, len(docs), args.batch):
        pts = [{"id": d["id"], "vector": vectors[d["id"]], "payload": {"text": d["text"], "pos": d["pos"]}}
               for d in docs[i:i + args.batch]]
        batches.append(json.dumps({"points": pts}).encode())

    queries = make_queries(docs, args.queries, args.seed)
    qvec = [emb.embed(q) for q in queries]
    kinds = {
        "keyword (bm25)": [json.dumps({"query": {"bm25": {"field": FIELD, "text": q}}, "limit": 10}).encode()
                           for q in queries],
        "dense": [json.dumps({"query": v, "limit": 10}).encode() for v in qvec],
        "hybrid (dense + bm25, rrf)": [json.dumps({
            "prefetch": [{"query": v, "limit": 20}, {"query": {"bm25": {"field": FIELD, "text": q}}, "limit": 20}],
            "query": {"fusion": "rrf"}, "limit": 10}).encode() for q, v in zip(queries, qvec)],
    }
    print(f"queries: {len(queries)} per kind, e.g. {queries[:5]}", flush=True)
    print(f"load average at start: {os.getloadavg()}", flush=True)

    report = {"documents": len(docs), "tokens": n_tokens, "runs": []}
    for parts in [int(p) for p in args.partitions.split(",")]:
        srv = Server(args.binary, parts)
        try:
            h = Http(srv.port)
            create = {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": parts}
            index = {"field_name": FIELD, "field_schema": "text"}
            run = {"partitions": parts}

            # The collection the queries run on: text index first, then every document.
            h.call("PUT", "/collections/docs", create)
            h.call("PUT", "/collections/docs/index?wait=true", index)
            done = upsert_all(srv, "docs", batches, f"[{parts}] docs")
            run["upsert_with_text_index_docs_s"] = len(docs) / done[-1]
            prefix = min(args.prefix // args.batch, len(batches))
            n_prefix = min(prefix * args.batch, len(docs))
            run["prefix_docs"] = n_prefix
            run["prefix_with_text_index_docs_s"] = n_prefix / done[prefix - 1]
            # The text index made again on the full collection: create_payload_index on existing data.
            h.call("DELETE", "/collections/docs/index/text?wait=true")
            t = time.perf_counter()
            h.call("PUT", "/collections/docs/index?wait=true", index)
            run["create_text_index_s"] = time.perf_counter() - t
            # The same first documents into a fresh collection without a text index.
            h.call("PUT", "/collections/plain", create)
            done = upsert_all(srv, "plain", batches[:prefix], f"[{parts}] plain")
            run["prefix_no_text_index_docs_s"] = n_prefix / done[-1]
            h.call("DELETE", "/collections/plain")
            print(f"[{parts} partition(s)] upsert {run['upsert_with_text_index_docs_s']:.0f} docs/s with the text "
                  f"index (all {len(docs)}); first {n_prefix}: {run['prefix_with_text_index_docs_s']:.0f} docs/s with, "
                  f"{run['prefix_no_text_index_docs_s']:.0f} docs/s without; create_payload_index(text) on "
                  f"{len(docs)} docs: {run['create_text_index_s']:.2f} s", flush=True)
            # Sanity: keyword queries find their source documents' words.
            sample = kinds["keyword (bm25)"][:200]
            hits = sum(1 for b in sample if h.call("POST", "/collections/docs/points/query", b)["result"]["points"])
            assert hits == len(sample), f"only {hits}/{len(sample)} keyword queries matched anything"

            run["queries"] = []
            for kind, bodies in [("GET / (REST floor)", [None] * len(queries)), *kinds.items()]:
                method, path = ("GET", "/") if bodies[0] is None else ("POST", "/collections/docs/points/query")
                for clients in (1, 2):
                    for _attempt in range(3):
                        r = run_queries(srv, method, path, bodies, clients)
                        # A request above a second here means the server (or client) was not
                        # running (e.g. stopped by another job on a shared machine): measure again.
                        if r["max_ms"] < 1000:
                            break
                        print(f"  {kind}, {clients} client(s): a request took {r['max_ms']:.0f} ms "
                              f"({r['qps']:.0f} QPS); measuring again", flush=True)
                    r.update(kind=kind, clients=clients, load=os.getloadavg()[0])
                    run["queries"].append(r)
                    print(f"[{parts} partition(s)] {kind:28s} {clients} client(s): {r['qps']:7.0f} QPS  "
                          f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  server p50 "
                          f"{r['server_p50_ms']:6.2f} ms  server CPU {r['server_cpu_ms_per_q']:5.2f} ms/q  "
                          f"client CPU {r['client_cpu_ms_per_q']:5.2f} ms/q  "
                          f"(load {r['load']:.1f})", flush=True)
            report["runs"].append(run)
        finally:
            srv.stop()

    print("\n| partitions | query | clients | QPS | p50 ms | p99 ms | server time p50 ms | server CPU ms/query "
          "| client CPU ms/query |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for run in report["runs"]:
        for r in run["queries"]:
            print(f"| {run['partitions']} | {r['kind']} | {r['clients']} | {r['qps']:,.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['server_p50_ms']:.2f} | {r['server_cpu_ms_per_q']:.2f} | "
                  f"{r['client_cpu_ms_per_q']:.2f} |")
    print("\n| partitions | upsert docs/s, all, text index | first N docs/s, text index | first N docs/s, no text index "
          "| create_payload_index(text) on all, s |")
    print("|---|---:|---:|---:|---:|")
    for run in report["runs"]:
        print(f"| {run['partitions']} | {run['upsert_with_text_index_docs_s']:,.0f} | "
              f"{run['prefix_with_text_index_docs_s']:,.0f} | {run['prefix_no_text_index_docs_s']:,.0f} | "
              f"{run['create_text_index_s']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
