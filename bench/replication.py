#!/usr/bin/env python3
"""Write throughput with one and two copies per partition, failover and catch-up times,
on three local `ametist serve` nodes (loopback only).

    python3 bench/replication.py target/release/ametist [--seconds 10] [--clients 8] [--batch 100]

For each replication factor (1, then 2) a collection of 6 partitions is loaded by
`--clients` concurrent clients, each sending `--batch`-point `wait=true` upserts of
128-dimensional vectors to the nodes in turn for `--seconds`; the script prints points/s
and the request latency p50/p99. Then, with the RF 2 collection under the same load, it
kills (SIGKILL) the node that holds the most primaries and reports the time from the kill
to the first acknowledged batch that touched every partition, restarts the node and
reports how long every copy took to be back in sync (the cluster route shows each copy).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

DIM = 128
SECRET = "bench-secret"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(method, url, body=None, timeout=60):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    def parse(raw):
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return raw.decode(errors="replace")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, parse(r.read())
    except urllib.error.HTTPError as e:
        return e.code, parse(e.read())


class Node:
    def __init__(self, binary, root, name, seeds):
        self.binary, self.dir = binary, os.path.join(root, name)
        self.rest, self.grpc, self.seeds = free_port(), free_port(), seeds
        self.base = f"http://127.0.0.1:{self.rest}"
        self.proc = None

    def start(self):
        env = dict(os.environ, AMETIST__REMOTING__SECRET=SECRET, RUST_LOG=os.environ.get("BENCH_LOG", "error"),
                   AMETIST__REMOTING__SEEDS=",".join(f"127.0.0.1:{p}" for p in self.seeds))
        env.pop("AMETIST_CONFIG", None)
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.rest), "--set", "server.grpc_port=null", "--data-dir", self.dir,
             "--set", "remoting.enabled=true", "--set", "remoting.host=127.0.0.1",
             "--set", f"remoting.port={self.grpc}"],
            env=env, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(os.environ["BENCH_LOG_DIR"], os.path.basename(self.dir) + ".log"), "a")
            if os.environ.get("BENCH_LOG_DIR") else subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if call("GET", f"{self.base}/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"node {self.base} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def load(nodes, name, seconds, clients, batch, next_id, results, stop=None):
    """Runs the write load; appends (latency, ok, touched_all_partitions_time) per request."""
    deadline = time.time() + seconds
    lock = threading.Lock()

    def client(k):
        rng = random.Random(k)
        i = 0
        while time.time() < deadline and not (stop and stop.is_set()):
            live = [n for n in nodes if n.proc.poll() is None]
            node = live[i % len(live)]
            i += 1
            with lock:
                start_id = next_id[0]
                next_id[0] += batch
            pts = [{"id": start_id + j, "vector": [rng.uniform(-1, 1) for _ in range(DIM)]} for j in range(batch)]
            t0 = time.time()
            try:
                status, _ = call("PUT", f"{node.base}/collections/{name}/points?wait=true", {"points": pts})
            except OSError:
                status = 0
            t1 = time.time()
            with lock:
                results.append((t1 - t0, status == 200, t1))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def summary(results, seconds, batch):
    ok = sorted(r[0] for r in results if r[1])
    if not ok:
        return "no write acknowledged"
    p = lambda q: ok[min(len(ok) - 1, int(q * len(ok)))] * 1000
    return (f"{len(ok) * batch / seconds:,.0f} points/s ({len(ok)} batches), "
            f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, {len(results) - len(ok)} failed")


def dump(what, nodes):
    """Each node's view of the rf2 placement and of Raft (no leader, or a node whose view
    stopped, looks different from a copy whose recovery never ends), for the logs' reader."""
    for n in nodes:
        try:
            r = call("GET", f"{n.base}/cluster", timeout=5)[1]["result"]
            print(f"{what}: {os.path.basename(n.dir)} raft {json.dumps(r['raft_info'])} rf2 "
                  f"{json.dumps(r['collections'].get('rf2'))}", flush=True)
        except (OSError, KeyError, TypeError) as e:
            print(f"{what}: {os.path.basename(n.dir)} did not answer: {e}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--skip-rf1", action="store_true",
                    help="load only the RF 2 collection (more failover tries per minute)")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="ametist-bench-replication-")
    nodes = []
    try:
        for name in "abc":
            node = Node(args.binary, root, name, [n.grpc for n in nodes])
            node.start()
            nodes.append(node)
        next_id = [0]
        for rf in ((2,) if args.skip_rf1 else (1, 2)):
            name = f"rf{rf}"
            status, body = call("PUT", f"{nodes[0].base}/collections/{name}", {
                "vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 6, "replication_factor": rf})
            assert status == 200, body
            time.sleep(1)
            results = []
            load(nodes, name, args.seconds, args.clients, args.batch, next_id, results)
            print(f"RF {rf}: {summary(results, args.seconds, args.batch)}", flush=True)

        # Failover: kill the node holding the most primaries of rf2, under load.
        _, info = call("GET", f"{nodes[0].base}/cluster")
        placement = info["result"]["collections"]["rf2"]
        ids = [call("GET", f"{n.base}/cluster")[1]["result"]["peer_id"] for n in nodes]
        primaries = [sum(1 for p in placement if p["primary"] == i) for i in ids]
        victim = nodes[primaries.index(max(primaries))]
        results, stop = [], threading.Event()
        loader = threading.Thread(target=load, args=(nodes, "rf2", 1e9, args.clients, args.batch, next_id, results, stop))
        loader.start()
        time.sleep(2)
        killed = time.time()
        victim.kill()
        while not any(r[1] and r[2] > killed and r[2] - r[0] > killed for r in list(results)):
            if time.time() - killed > 30:
                break
            time.sleep(0.01)
        first = min((r[2] for r in list(results) if r[1] and r[2] - r[0] > killed), default=None)
        print(f"failover: first batch sent after the kill acknowledged {first - killed:.2f} s after the kill"
              if first else "failover: no write acknowledged within 30 s", flush=True)
        if not first:
            dump("no failover", [n for n in nodes if n is not victim])
        time.sleep(3)
        restarted = time.time()
        victim.start()

        witness = next(n for n in nodes if n is not victim)

        def in_sync():
            _, b = call("GET", f"{witness.base}/collections/rf2/cluster")
            r = b["result"]
            return all(c["state"] == "Active" for c in r["local_shards"] + r["remote_shards"])
        while not in_sync() and time.time() - restarted < 120:
            time.sleep(0.1)
        took = time.time() - restarted
        if not in_sync():
            dump("not back in sync", nodes)
        stop.set()
        loader.join()
        _, b = call("POST", f"{witness.base}/collections/rf2/points/count", {"exact": True})
        counts = [call("GET", f"{n.base}/cluster")[1]["result"]["recoveries"] for n in nodes]
        print(f"catch-up: every copy back in sync {took:.2f} s after the restart (node start included), "
              f"{b['result']['count']:,} points in the collection; recoveries by node: {counts}", flush=True)
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
