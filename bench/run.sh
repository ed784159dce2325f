#!/usr/bin/env bash
# Ametist vs hnswlib, side by side, on the data sets built by the data preparation script
# (shared/data/prepare.py DATA_DIR). Usage: bench/run.sh DATA_DIR [fashion-mnist|glove-50 ...]
# Extra options for compare.py can be passed in COMPARE_ARGS (e.g. "--queries 2000 --repeat 5").
set -euo pipefail
data=${1:?usage: bench/run.sh DATA_DIR [dataset ...]}
shift
sets=("$@")
[ ${#sets[@]} -eq 0 ] && sets=(fashion-mnist glove-50)
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
# numpy's BLAS must not start extra threads next to the benchmark.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cargo build --release -p ametist-bench
bin=${CARGO_TARGET_DIR:-target}/release/ametist-bench
for s in "${sets[@]}"; do
  extra=""
  case $s in
    fashion-mnist) metric=euclid ;;
    glove-50) metric=cosine ;;
    glove-50-dot) s=glove-50; metric=dot; extra="--gt gt-dot" ;;
    *) metric=euclid ;;
  esac
  python3 "$here/compare.py" "$bin" "$data/$s" --metric $metric $extra ${COMPARE_ARGS:-}
  echo
done
