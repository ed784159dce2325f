#!/usr/bin/env python3
"""Ametist and hnswlib side by side, in one invocation, interleaved.

  compare.py AMETIST_BENCH_BINARY DATA_DIR [--metric euclid|cosine|dot] [--gt gt] [--m 16]
             [--ef-construction 200] [--threads 2] [--ef 10,20,...] [--queries N] [--repeat 3]
             [--json OUT.json] [--quantization none|int4|int8]

Builds Ametist (the `ametist-bench --serve` child process) and then hnswlib on the same
files with the same M / ef_construction / build threads; then, for every ef and every
repeat, measures hnswlib and Ametist one right after the other, so background load on
the machine hits both alike. Each cell keeps the best of the repeats. Prints one table.
"""
import argparse, json, subprocess, sys
from hnswlib_bench import HnswlibBench


def main():
    p = argparse.ArgumentParser()
    p.add_argument('binary')
    p.add_argument('dir')
    p.add_argument('--metric', default='euclid')
    p.add_argument('--gt', default='gt')
    p.add_argument('--m', type=int, default=16)
    p.add_argument('--ef-construction', type=int, default=200)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--ef', default='10,20,40,50,80,100,150,200,300')
    p.add_argument('--queries', type=int, default=None)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--json', default=None)
    p.add_argument('--quantization', default='none', help="Ametist's graph walk: none (f32), int4 or int8 codes")
    a = p.parse_args()

    cmd = [a.binary, a.dir, '--metric', a.metric, '--gt', a.gt, '--m', str(a.m), '--ef-construction',
           str(a.ef_construction), '--threads', str(a.threads), '--quantization', a.quantization, '--serve']
    if a.queries:
        cmd += ['--queries', str(a.queries)]
    am = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    am_head = json.loads(am.stdout.readline())
    hb = HnswlibBench(a.dir, a.metric, a.gt, a.m, a.ef_construction, a.threads, 10, a.queries)
    hl_head = hb.build()

    def ametist(ef):
        am.stdin.write(f'{ef} 1\n')
        am.stdin.flush()
        return json.loads(am.stdout.readline())

    efs = [int(x) for x in a.ef.split(',')]
    best = {}
    for ef in efs:
        h, m = None, None
        for _ in range(a.repeat):
            rh, rm = hb.measure(ef, 1), ametist(ef)
            h = rh if h is None else {**h, **{k: max(h[k], rh[k]) for k in ('qps_1t', 'qps_cpu', 'qps_1t_batch', 'qps_2t')}}
            m = rm if m is None else {**m, **{k: max(m[k], rm[k]) for k in ('qps_1t', 'qps_cpu', 'qps_2t')}}
        best[ef] = (h, m)
    am.stdin.write('quit\n')
    am.stdin.flush()
    am.wait()

    print(f'data {a.dir}  metric {a.metric}  M={a.m} ef_construction={a.ef_construction} build threads={a.threads}'
          f'  ametist walk {a.quantization}  queries {len(hb.queries)}  best of {a.repeat}, interleaved')
    print(f'build: ametist {am_head["build_s"]:.1f} s, hnswlib {hl_head["build_s"]:.1f} s '
          f'(ratio {am_head["build_s"] / hl_head["build_s"]:.2f})')
    print(f'memory/vector (VmRSS growth): ametist {am_head["mem_per_vector"]:.0f} B, hnswlib '
          f'{hl_head["mem_per_vector"]:.0f} B (ratio {am_head["mem_per_vector"] / hl_head["mem_per_vector"]:.2f})')
    print('| ef | recall A | recall H | QPS 1t A | QPS 1t H (per call) | QPS 1t H (batch) | A/H | '
          'QPS/CPU-s A | QPS/CPU-s H | A/H (CPU) | QPS 2t A | QPS 2t H | p50 µs A | p50 µs H | p99 µs A | p99 µs H |')
    print('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for ef in efs:
        h, m = best[ef]
        print(f'| {ef} | {m["recall_ab"]:.4f} | {h["recall_ab"]:.4f} | {m["qps_1t"]:.0f} | {h["qps_1t"]:.0f} | '
              f'{h["qps_1t_batch"]:.0f} | {m["qps_1t"] / h["qps_1t"]:.2f} | {m["qps_cpu"]:.0f} | {h["qps_cpu"]:.0f} | '
              f'{m["qps_cpu"] / h["qps_cpu"]:.2f} | {m["qps_2t"]:.0f} | {h["qps_2t"]:.0f} | '
              f'{m["p50_us"]:.0f} | {h["p50_us"]:.0f} | {m["p99_us"]:.0f} | {h["p99_us"]:.0f} |')
    # QPS at a recall target: the best QPS among ef values that reach it.
    for target in (0.95, 0.99):
        def at(side, key):
            return max((best[e][side][key] for e in efs if best[e][side]['recall_ab'] >= target), default=None)
        qa, qh, qb = at(1, 'qps_1t'), at(0, 'qps_1t'), at(0, 'qps_1t_batch')
        ca, ch = at(1, 'qps_cpu'), at(0, 'qps_cpu')
        if qa and qh:
            print(f'recall >= {target}: ametist {qa:.0f} QPS, hnswlib {qh:.0f} QPS per call ({qa / qh:.2f}x), '
                  f'{qb:.0f} QPS batch ({qa / qb:.2f}x); per CPU-second: ametist {ca:.0f}, hnswlib {ch:.0f} '
                  f'({ca / ch:.2f}x)')
        else:
            print(f'recall >= {target}: not reached by both (ametist {qa}, hnswlib {qh})')
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(ametist=am_head, hnswlib=hl_head, rows={e: dict(hnswlib=best[e][0], ametist=best[e][1])
                                                                  for e in efs}), f, indent=1)


if __name__ == '__main__':
    main()
