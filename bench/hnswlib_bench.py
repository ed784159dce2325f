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
    base = read_vecs(f'{a.dir}/base.fvecs', np.float32)
    queries = read_vecs(f'{a.dir}/query.fvecs', np.float32)
    gt = read_vecs(f'{a.dir}/{a.gt}.ivecs', np.int32)
    if a.queries:
        queries, gt = queries[:a.queries], gt[:a.queries]
    space = {'euclid': 'l2', 'l2': 'l2', 'cosine': 'cosine', 'angular': 'cosine', 'dot': 'ip', 'ip': 'ip'}[a.metric]
    if space == 'cosine':  # the vectors hnswlib stores (it normalises internally, the same way)
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        base, queries = base.astype(np.float32), queries.astype(np.float32)
    n, dim = base.shape
    nq = len(queries)

    rss0 = rss_kib()
    t = time.perf_counter()
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=100)
    index.add_items(base, np.arange(n), num_threads=a.threads)
    build_s = time.perf_counter() - t
    rss1 = rss_kib()
    mem = (rss1 - rss0) * 1024 / n

    base64 = base.astype(np.float64)
    q64 = queries.astype(np.float64)

    def exact(i, ids):
        v = base64[ids]
        if space == 'l2':
            return np.sqrt(((v - q64[i]) ** 2).sum(1))
        return -(v @ q64[i])

    kth = np.array([exact(i, gt[i, :a.k]).max() for i in range(nq)])
    rows = []
    if not a.json:
        print(f'hnswlib {hnswlib.__version__ if hasattr(hnswlib, "__version__") else ""}: {a.dir} n={n} dim={dim} '
              f'space={space} M={a.m} ef_construction={a.ef_construction} threads={a.threads}')
        print(f'build {build_s:.2f} s, RSS +{(rss1 - rss0) / 1024:.1f} MiB = {mem:.0f} B/vector')
        print(f'{"ef":>5} {"recall":>8} {"recall_ab":>9} {"qps_1t":>10} {"qps_1t_bat":>10} {"qps_2t":>10} '
              f'{"p50_us":>9} {"p99_us":>9}')
    for ef in [int(x) for x in a.ef.split(',')]:
        index.set_ef(ef)
        best1 = best_b = best2 = 0.0
        lat = None
        for _ in range(max(1, a.repeat)):
            index.set_num_threads(1)
            labels = np.empty((nq, a.k), dtype=np.int64)
            l = np.empty(nq)
            t = time.perf_counter()
            for i in range(nq):
                t1 = time.perf_counter()
                labels[i] = index.knn_query(queries[i:i + 1], k=a.k)[0][0]
                l[i] = time.perf_counter() - t1
            qps = nq / (time.perf_counter() - t)
            if qps > best1:
                best1, lat = qps, l
            t = time.perf_counter()
            index.knn_query(queries, k=a.k, num_threads=1)
            best_b = max(best_b, nq / (time.perf_counter() - t))
            t = time.perf_counter()
            index.knn_query(queries, k=a.k, num_threads=2)
            best2 = max(best2, nq / (time.perf_counter() - t))
        hits = sum(len(set(labels[i]) & set(gt[i, :a.k])) for i in range(nq))
        hits_ab = sum(int((exact(i, labels[i]) <= kth[i] + 1e-3).sum()) for i in range(nq))
        recall, recall_ab = hits / (nq * a.k), hits_ab / (nq * a.k)
        p50, p99 = np.percentile(lat, 50) * 1e6, np.percentile(lat, 99) * 1e6
        rows.append(dict(ef=ef, recall=recall, recall_ab=recall_ab, qps_1t=best1, qps_1t_batch=best_b, qps_2t=best2,
                         p50_us=p50, p99_us=p99))
        if not a.json:
            print(f'{ef:>5} {recall:>8.4f} {recall_ab:>9.4f} {best1:>10.0f} {best_b:>10.0f} {best2:>10.0f} '
                  f'{p50:>9.1f} {p99:>9.1f}')
    if a.json:
        print(json.dumps(dict(name='hnswlib', n=n, dim=dim, build_s=build_s, mem_per_vector=mem, rows=rows)))


if __name__ == '__main__':
    main()
