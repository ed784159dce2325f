#!/usr/bin/env python3
"""A synthetic sentence-embedding-like data set, for benchmarks of the walk on codes.

  make_embeddings.py OUT_DIR [--dim 384] [--n 100000] [--queries 1000] [--clusters 1000] [--seed 384]

Writes OUT_DIR/{base.fvecs,query.fvecs,gt.ivecs,gt_dist.fvecs} in the TEXMEX layout that
shared/data/prepare.py writes (gt: the exact cosine top 100 of each query, by a float64 scan
in numpy, independent of Ametist).

The vectors: a seeded mixture of Gaussians. `clusters` centres drawn from N(0, I) in `dim`
dimensions; every base vector and every query picks a centre at random and adds N(0, s^2 I)
noise with s = 1 (as wide as the centres' spread, so clusters overlap as topics do), then
is normalised to unit length. Queries are drawn the same way and are not in the base.
Components are centred on zero: 1-bit codes (the sign of each component) suit this data as
they suit most embedding models; models whose embeddings share a large common direction
suit them less, and this set does not show that.
"""
import argparse, pathlib
import numpy as np


def write_vecs(path, a):
    a = np.ascontiguousarray(a)
    n, d = a.shape
    out = np.empty((n, d + 1), dtype=np.int32)
    out[:, 0] = d
    out[:, 1:] = a.view(np.int32)
    out.tofile(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('out')
    p.add_argument('--dim', type=int, default=384)
    p.add_argument('--n', type=int, default=100_000)
    p.add_argument('--queries', type=int, default=1_000)
    p.add_argument('--clusters', type=int, default=1_000)
    p.add_argument('--seed', type=int, default=384)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    centres = rng.standard_normal((a.clusters, a.dim), dtype=np.float32)

    def draw(n):
        v = centres[rng.integers(0, a.clusters, n)] + rng.standard_normal((n, a.dim), dtype=np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    base, queries = draw(a.n), draw(a.queries)
    k = 100
    gt = np.empty((a.queries, k), dtype=np.int32)
    gd = np.empty((a.queries, k), dtype=np.float32)
    b64 = base.astype(np.float64)
    for s in range(0, a.queries, 100):
        sims = queries[s:s + 100].astype(np.float64) @ b64.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.take_along_axis(-sims, top, axis=1).argsort(axis=1, kind='stable')
        top = np.take_along_axis(top, order, axis=1)
        gt[s:s + 100] = top
        gd[s:s + 100] = np.take_along_axis(sims, top, axis=1)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_vecs(out / 'base.fvecs', base)
    write_vecs(out / 'query.fvecs', queries)
    write_vecs(out / 'gt.ivecs', gt)
    write_vecs(out / 'gt_dist.fvecs', gd)
    print(f'{out}: base {base.shape}, queries {queries.shape}, exact cosine top {k}')


if __name__ == '__main__':
    main()
