#!/usr/bin/env python3
"""hnswlib on the same TEXMEX files and with the same protocol as `ametist-bench`.

  hnswlib_bench.py DATA_DIR [--metric euclid|cosine|dot] [--gt gt] [--m 16] [--ef-construction 200]
                   [--threads 2] [--ef 10,20,...] [--k 10] [--queries N] [--repeat 1] [--json]

Build with `threads` threads; then per ef: recall@10 (id overlap, and the ann-benchmarks
rule on distances recomputed in float64), QPS with one search thread and one query per
call (`knn_query(q[i:i+1])`, as the reference figures), QPS with one thread in a single
batch call (no per-call Python overhead), QPS with two threads (batch), p50/p99 latency.
Memory: VmRSS growth over the build.
"""
import argparse, json, sys, time
import numpy as np
import hnswlib


def read_vecs(path, dtype):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def rss_kib():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])
    return 0


class HnswlibBench:
    """Loads a data set, builds hnswlib, measures one ef at a time."""

    def __init__(self, data_dir, metric='euclid', gt='gt', m=16, ef_construction=200, threads=2, k=10,
                 queries=None):
        base = read_vecs(f'{data_dir}/base.fvecs', np.float32)
        q = read_vecs(f'{data_dir}/query.fvecs', np.float32)
        g = read_vecs(f'{data_dir}/{gt}.ivecs', np.int32)
        if queries:
            q, g = q[:queries], g[:queries]
        self.space = {'euclid': 'l2', 'l2': 'l2', 'cosine': 'cosine', 'angular': 'cosine', 'dot': 'ip',
                      'ip': 'ip'}[metric]
        if self.space == 'cosine':  # the vectors hnswlib stores (it normalises internally, the same way)
            base = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
            q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        self.base, self.queries, self.gt, self.k = base, q, g, k
        self.m, self.ef_construction, self.threads = m, ef_construction, threads
        self.base64 = base.astype(np.float64)
        self.q64 = q.astype(np.float64)
        self.kth = np.array([self.exact(i, g[i, :k]).max() for i in range(len(q))])

    def exact(self, i, ids):
        v = self.base64[ids]
        if self.space == 'l2':
            return np.sqrt(((v - self.q64[i]) ** 2).sum(1))
        return -(v @ self.q64[i])

    def build(self):
        n, dim = self.base.shape
        rss0 = rss_kib()
        t = time.perf_counter()
        index = hnswlib.Index(space=self.space, dim=dim)
        index.init_index(max_elements=n, M=self.m, ef_construction=self.ef_construction, random_seed=100)
        index.add_items(self.base, np.arange(n), num_threads=self.threads)
        self.build_s = time.perf_counter() - t
        self.mem = (rss_kib() - rss0) * 1024 / n
        self.index = index
        return dict(name='hnswlib', n=n, dim=dim, build_s=self.build_s, mem_per_vector=self.mem)

    def measure(self, ef, repeat=1):
        index, queries, k = self.index, self.queries, self.k
        nq = len(queries)
        index.set_ef(ef)
        best1 = best_b = best2 = best_cpu = 0.0
        lat = labels = None
        for _ in range(max(1, repeat)):
            index.set_num_threads(1)
            lab = np.empty((nq, k), dtype=np.int64)
            l = np.empty(nq)
            t = time.perf_counter()
            cpu0 = time.thread_time()
            for i in range(nq):
                t1 = time.perf_counter()
                lab[i] = index.knn_query(queries[i:i + 1], k=k)[0][0]
                l[i] = time.perf_counter() - t1
            best_cpu = max(best_cpu, nq / (time.thread_time() - cpu0))
            qps = nq / (time.perf_counter() - t)
            if qps > best1:
                best1, lat, labels = qps, l, lab
            t = time.perf_counter()
            index.knn_query(queries, k=k, num_threads=1)
            best_b = max(best_b, nq / (time.perf_counter() - t))
            t = time.perf_counter()
            index.knn_query(queries, k=k, num_threads=2)
            best2 = max(best2, nq / (time.perf_counter() - t))
        gt = self.gt
        hits = sum(len(set(labels[i]) & set(gt[i, :k])) for i in range(nq))
        hits_ab = sum(int((self.exact(i, labels[i]) <= self.kth[i] + 1e-3).sum()) for i in range(nq))
        return dict(ef=ef, recall=hits / (nq * k), recall_ab=hits_ab / (nq * k), qps_1t=best1, qps_cpu=best_cpu, qps_1t_batch=best_b,
                    qps_2t=best2, p50_us=np.percentile(lat, 50) * 1e6, p99_us=np.percentile(lat, 99) * 1e6)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('dir')
    p.add_argument('--metric', default='euclid')
    p.add_argument('--gt', default='gt')
    p.add_argument('--m', type=int, default=16)
    p.add_argument('--ef-construction', type=int, default=200)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--ef', default='10,20,40,50,80,100,150,200,300')
    p.add_argument('--k', type=int, default=10)
    p.add_argument('--queries', type=int, default=None)
    p.add_argument('--repeat', type=int, default=1)
    p.add_argument('--json', action='store_true')
    a = p.parse_args()
    b = HnswlibBench(a.dir, a.metric, a.gt, a.m, a.ef_construction, a.threads, a.k, a.queries)
    head = b.build()
    if not a.json:
        print(f'hnswlib: {a.dir} n={head["n"]} dim={head["dim"]} space={b.space} M={a.m} '
              f'ef_construction={a.ef_construction} threads={a.threads}')
        print(f'build {b.build_s:.2f} s, {b.mem:.0f} B/vector (VmRSS growth)')
        print(f'{"ef":>5} {"recall":>8} {"recall_ab":>9} {"qps_1t":>10} {"qps_1t_bat":>10} {"qps_2t":>10} '
              f'{"p50_us":>9} {"p99_us":>9}')
    rows = []
    for ef in [int(x) for x in a.ef.split(',')]:
        r = b.measure(ef, a.repeat)
        rows.append(r)
        if not a.json:
            print(f'{ef:>5} {r["recall"]:>8.4f} {r["recall_ab"]:>9.4f} {r["qps_1t"]:>10.0f} {r["qps_1t_batch"]:>10.0f} '
                  f'{r["qps_2t"]:>10.0f} {r["p50_us"]:>9.1f} {r["p99_us"]:>9.1f}')
    if a.json:
        print(json.dumps(dict(head, rows=rows)))


if __name__ == '__main__':
    main()
