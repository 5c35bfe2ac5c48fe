#!/usr/bin/env bash
# `perfmodel bench` on the lent H100 for the committed tables under benchmarks/ (issue 3's figures).
#
#     bash scripts/device_bench.sh SUITE[:DTYPE] ...     e.g.  bash scripts/device_bench.sh seed fa3-grid fa3-grid:bf16
# BENCH_ARGS adds arguments to every bench (e.g. BENCH_ARGS="--stages none --refs flex,sdpa_cudnn"), and
# BENCH_TAG to the CSV names.
# Carries .whl (the nvtx wheel). Leaves in $OUT one CSV per suite (GPU, versions and date on every row) and
# bench.log with the printed tables; copy the CSVs to benchmarks/.
set -uo pipefail
DEVICE_KEEP_RUNS=1 source scripts/device_setup.sh  # $OUT, an empty $RUNS, the carried wheels, PYTHONPATH
for spec in "$@"; do
  suite=${spec%%:*}
  dtype=fp16
  [ "$spec" != "$suite" ] && dtype=${spec#*:}
  t0=$(date +%s)
  echo "== perfmodel bench --suite $suite --dtype $dtype" | tee -a "$OUT/bench.log"
  # shellcheck disable=SC2086
  python3 -m perfmodel bench --suite "$suite" --dtype "$dtype" ${BENCH_ARGS:-} \
    --csv "$OUT/bench-$suite-$dtype${BENCH_TAG:-}.csv" 2>&1 \
    | grep -v '^\[' | tee -a "$OUT/bench.log"
  echo "== $suite $dtype: exit ${PIPESTATUS[0]} after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/bench.log"
done
