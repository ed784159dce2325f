#!/usr/bin/env python3
"""Ametist against hnswlib, faiss (HNSW and IVF-PQ fast-scan) and ScaNN, in one invocation.

  speed.py AMETIST_BENCH_BINARY DATA_DIR [--metric euclid|cosine|dot] [--gt gt] [--queries 3000]
           [--repeat 3] [--index auto|ivf|hnsw] [--only ametist,hnswlib,faiss-hnsw,faiss-ivfpqfs,scann]
           [--json OUT.json]

Builds every index on the same files (build threads: 2 everywhere), then measures them
interleaved: for every position in the parameter sweeps and every repeat, each system
searches once, one right after the other, so that background load on a shared machine hits
all alike. Each system is called once over the whole query set with one search thread (the
peers' batch calls; Ametist's `ametist-bench --serve` loops in Rust), and reports QPS by wall
clock and per CPU-second of the searching process. Recall@10 uses ann-benchmarks' rule (a
hit is any returned point within the 10th true distance + 1e-3, recomputed in float64).

Peers and their parameters (ann-benchmarks' configurations, narrowed to this machine):
  hnswlib        M=16, ef_construction=200; ef swept
  faiss-hnsw     IndexHNSWFlat M=32, efConstruction=200; efSearch swept
  faiss-ivfpqfs  IVF{2·sqrt(n)},PQ{dim/2}x4fs with an exact IndexRefineFlat; (nprobe, k_factor) swept
  scann          tree of 2·sqrt(n) leaves trained on all points (for cosine spherical, with quantized
                 centroids, as ann-benchmarks), score_ah(2 dims per block, anisotropic threshold 0.2
                 for dot/cosine), exact reorder; (leaves, reorder) swept
Prints, per recall target 0.90 / 0.95 / 0.99, each system's best QPS reaching it and the
ratio of Ametist to the best peer; then build time and memory (VmRSS growth over the build).
"""
import argparse, json, math, subprocess, sys, time
import numpy as np

from hnswlib_bench import read_vecs, rss_kib


class Data:
    def __init__(self, d, metric, gt, queries):
        self.base = read_vecs(f'{d}/base.fvecs', np.float32)
        q = read_vecs(f'{d}/query.fvecs', np.float32)
        g = read_vecs(f'{d}/{gt}.ivecs', np.int32)
        if queries:
            q, g = q[:queries], g[:queries]
        self.metric = metric
        if metric == 'cosine':
            self.base = (self.base / np.linalg.norm(self.base, axis=1, keepdims=True)).astype(np.float32)
            q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        self.queries, self.gt = np.ascontiguousarray(q), g
        self.b64, self.q64 = self.base.astype(np.float64), q.astype(np.float64)
        self.kth = np.array([self.exact(i, g[i, :10]).max() for i in range(len(q))])

    def exact(self, i, ids):
        v = self.b64[ids]
        if self.metric == 'euclid':
            return np.sqrt(((v - self.q64[i]) ** 2).sum(1))
        return -(v @ self.q64[i])

    def recall(self, labels):
        hits = 0
        for i in range(len(self.queries)):
            ids = labels[i][labels[i] >= 0]
            hits += int((self.exact(i, ids) <= self.kth[i] + 1e-3).sum())
        return hits / (len(self.queries) * 10)


def timed(fn):
    """Runs fn once: (result, wall seconds, CPU seconds of this process)."""
    t, c = time.perf_counter(), time.process_time()
    r = fn()
    return r, time.perf_counter() - t, time.process_time() - c


class Peer:
    """A Python-side system: build() once, then search(param) -> labels (nq x 10)."""
    name = ''
    params = []

    def build_measured(self, data):
        rss0 = rss_kib()
        _, wall, _ = timed(lambda: self.build(data))
        return dict(build_s=wall, mem_per_vector=(rss_kib() - rss0) * 1024 / len(data.base))

    def measure(self, data, p):
        labels, wall, cpu = timed(lambda: self.search(data, p))
        nq = len(data.queries)
        return dict(param=str(p), recall=data.recall(labels), qps=nq / wall, qps_cpu=nq / max(cpu, 1e-9))


class Hnswlib(Peer):
    name = 'hnswlib'
    params = [10, 20, 30, 40, 60, 80, 120, 160, 200, 300, 500]

    def build(self, data):
        import hnswlib
        space = {'euclid': 'l2', 'cosine': 'ip', 'dot': 'ip'}[data.metric]
        self.index = hnswlib.Index(space=space, dim=data.base.shape[1])
        self.index.init_index(max_elements=len(data.base), M=16, ef_construction=200, random_seed=100)
        self.index.add_items(data.base, np.arange(len(data.base)), num_threads=2)

    def search(self, data, ef):
        self.index.set_ef(ef)
        return self.index.knn_query(data.queries, k=10, num_threads=1)[0].astype(np.int64)


class FaissHnsw(Peer):
    name = 'faiss-hnsw'
    params = [10, 20, 30, 40, 60, 80, 120, 160, 200, 300, 500]

    def build(self, data):
        import faiss
        faiss.omp_set_num_threads(2)
        metric = faiss.METRIC_L2 if data.metric == 'euclid' else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.IndexHNSWFlat(data.base.shape[1], 32, metric)
        self.index.hnsw.efConstruction = 200
        self.index.add(data.base)

    def search(self, data, ef):
        import faiss
        faiss.omp_set_num_threads(1)
        self.index.hnsw.efSearch = ef
        return self.index.search(data.queries, 10)[1]


class FaissIvfPqFs(Peer):
    name = 'faiss-ivfpqfs'
    params = [(8, 10), (16, 10), (24, 20), (32, 20), (40, 20), (48, 20), (64, 30), (80, 30), (96, 40), (128, 50),
              (192, 50), (256, 50)]

    def build(self, data):
        import faiss
        faiss.omp_set_num_threads(2)
        n, d = data.base.shape
        metric = faiss.METRIC_L2 if data.metric == 'euclid' else faiss.METRIC_INNER_PRODUCT
        nlist = int(2 * math.sqrt(n))
        base = faiss.index_factory(d, f'IVF{nlist},PQ{(d + 1) // 2}x4fs', metric)
        self.index = faiss.IndexRefineFlat(base)
        self.index.train(data.base)
        self.index.add(data.base)
        self.ivf = faiss.extract_index_ivf(base)

    def search(self, data, p):
        import faiss
        faiss.omp_set_num_threads(1)
        self.ivf.nprobe, self.index.k_factor = p
        return self.index.search(data.queries, 10)[1]


class Scann(Peer):
    name = 'scann'
    params = [(10, 40), (20, 60), (30, 80), (40, 100), (50, 120), (60, 150), (70, 150), (80, 200), (100, 200),
              (120, 250), (160, 300), (200, 300), (300, 400)]

    def build(self, data):
        import scann
        n = len(data.base)
        dist = 'squared_l2' if data.metric == 'euclid' else 'dot_product'
        threshold = float('nan') if data.metric == 'euclid' else 0.2
        spherical = data.metric == 'cosine'
        self.searcher = (scann.scann_ops_pybind.builder(data.base, 10, dist)
                         .tree(num_leaves=int(2 * math.sqrt(n)), num_leaves_to_search=100, training_sample_size=n,
                               spherical=spherical, quantize_centroids=spherical)
                         .score_ah(2, anisotropic_quantization_threshold=threshold)
                         .reorder(100).build())

    def search(self, data, p):
        leaves, reorder = p
        return self.searcher.search_batched(data.queries, leaves_to_search=leaves,
                                            pre_reorder_num_neighbors=reorder)[0].astype(np.int64)


class Ametist:
    """The `ametist-bench --serve` child: builds at start, answers `PARAM REPEAT` lines."""
    name = 'ametist'

    def __init__(self, binary, d, a):
        self.cmd = [binary, d, '--metric', a.metric, '--gt', a.gt, '--threads', '2', '--index', a.index, '--serve']
        if a.queries:
            self.cmd += ['--queries', str(a.queries)]

    def build_measured(self, data):
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        head = json.loads(self.proc.stdout.readline())
        ivf = head['index'] == 'ivf'
        self.params = (['8/60', '16/100', '24/120', '28/150', '32/150', '36/200', '44/200', '52/200', '56/200', '64/250',
                        '80/300', '100/300', '120/400', '140/400', '160/500', '200/500']
                       if ivf else [10, 15, 20, 30, 40, 60, 80, 120, 200, 300])
        self.name = f'ametist ({head["index"]})'
        return dict(build_s=head['build_s'], mem_per_vector=head['mem_per_vector'])

    def measure(self, data, p):
        self.proc.stdin.write(f'{p} 1\n')
        self.proc.stdin.flush()
        r = json.loads(self.proc.stdout.readline())
        return dict(param=str(p), recall=r['recall_ab'], qps=r['qps_1t'], qps_cpu=r['qps_cpu'])

    def close(self):
        self.proc.stdin.write('quit\n')
        self.proc.stdin.flush()
        self.proc.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('binary')
    p.add_argument('dir')
    p.add_argument('--metric', default='euclid')
    p.add_argument('--gt', default='gt')
    p.add_argument('--queries', type=int, default=3000)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--index', default='auto')
    p.add_argument('--only', default='ametist,hnswlib,faiss-hnsw,faiss-ivfpqfs,scann')
    p.add_argument('--json', default=None)
    a = p.parse_args()
    only = a.only.split(',')

    data = Data(a.dir, a.metric, a.gt, a.queries)
    systems = []
    if 'ametist' in only:
        systems.append(Ametist(a.binary, a.dir, a))
    systems += [c() for c in (Hnswlib, FaissHnsw, FaissIvfPqFs, Scann) if c.name in only]
    builds = {}
    for s in systems:
        builds[s] = s.build_measured(data)
        print(f'built {s.name}: {builds[s]["build_s"]:.1f} s', file=sys.stderr, flush=True)

    # Interleaved: position i of every sweep, every repeat, each system once in turn.
    best = {s: {} for s in systems}
    for i in range(max(len(s.params) for s in systems)):
        for _ in range(a.repeat):
            for s in systems:
                if i < len(s.params):
                    r = s.measure(data, s.params[i])
                    old = best[s].get(r['param'])
                    if old is None:
                        best[s][r['param']] = r
                    else:
                        old['qps'], old['qps_cpu'] = max(old['qps'], r['qps']), max(old['qps_cpu'], r['qps_cpu'])
        print(f'swept position {i}', file=sys.stderr, flush=True)
    for s in systems:
        if isinstance(s, Ametist):
            s.close()

    print(f'data {a.dir}  metric {a.metric}  queries {len(data.queries)}  one search thread, best of {a.repeat}, interleaved')
    print('| system | param | recall@10 | QPS | QPS per CPU-s |')
    print('|---|---|---:|---:|---:|')
    for s in systems:
        for r in best[s].values():
            print(f'| {s.name} | {r["param"]} | {r["recall"]:.4f} | {r["qps"]:.0f} | {r["qps_cpu"]:.0f} |')
    ours = systems[0] if systems and isinstance(systems[0], Ametist) else None
    print()
    for key, label in (('qps', 'QPS (wall)'), ('qps_cpu', 'QPS per CPU-second')):
        print(f'{label} at recall@10 >=:')
        print('| target | ' + ' | '.join(s.name for s in systems) + ' | Ametist / best peer |')
        print('|---|' + '---:|' * (len(systems) + 1))
        for target in (0.90, 0.95, 0.99):
            at = {s: max((r[key] for r in best[s].values() if r['recall'] >= target), default=None) for s in systems}
            peers = [v for s, v in at.items() if s is not ours and v]
            ratio = f'{at[ours] / max(peers):.2f}' if ours and at[ours] and peers else '-'
            print(f'| {target} | ' + ' | '.join(f'{at[s]:.0f}' if at[s] else '-' for s in systems) + f' | {ratio} |')
        print()
    print('| system | build s (2 threads) | memory B/vector (VmRSS growth) |')
    print('|---|---:|---:|')
    for s in systems:
        print(f'| {s.name} | {builds[s]["build_s"]:.1f} | {builds[s]["mem_per_vector"]:.0f} |')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({s.name: dict(build=builds[s], rows=list(best[s].values())) for s in systems}, f, indent=1)


if __name__ == '__main__':
    main()
