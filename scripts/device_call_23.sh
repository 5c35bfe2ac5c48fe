#!/usr/bin/env bash
# One device call for issue 23 (the GPU time and the cached launch path), inside the per-call limit of 600 s:
#   1. `perfmodel collect --suite seed` with Nsight Compute (scripts/device_collect.sh; COLLECT_LIMIT_S, default 270 s):
#      the launch table (host path per call), the timings by CUDA graph and host loop, graph time against ncu's
#      gpu__time_duration, and the determinism table (the prepared launch's output bitwise against the first call's);
#   2. `perfmodel bench --suite batching` and `--suite fa3-grid` with cuDNN as the peer (--rep-ms 60 --warmup-ms 15),
#      each under a time limit (the CSV is rewritten after every case, so a bench stopped early keeps what it measured).
# At most 8 files come back: run.tar.gz, profile.ncu-rep.gz, the two CSVs and logs.tar.gz (everything else).
set -uo pipefail
FINAL="${OUT:-/tmp/perfmodel-out}"
W=/tmp/call23
rm -rf "$W" && mkdir -p "$W"
export OUT="$W"
source scripts/device_setup.sh
nvidia-smi > "$W/nvidia-smi.txt" 2>&1
start=$(date +%s)
COLLECT_LIMIT_S="${COLLECT_LIMIT_S:-270}" bash scripts/device_collect.sh seed > "$W/device-collect.out" 2>&1
tail -30 "$W/device-collect.out"
for suite in batching fa3-grid; do
  left=$(( ${CALL_LIMIT_S:-560} - ($(date +%s) - start) ))
  limit=$left
  if [ "$suite" = batching ] && [ "$limit" -gt 70 ]; then limit=70; fi
  [ "$limit" -gt 20 ] || { echo "== $suite: no time left"; continue; }
  t0=$(date +%s)
  timeout -s INT "$limit" python3 -m perfmodel bench --suite "$suite" --refs sdpa_cudnn --rep-ms 60 --warmup-ms 15 \
    --csv "$FINAL/bench-$suite-fp16.csv" > "$W/bench-$suite.log" 2>&1
  echo "== $suite: exit $? after $(( $(date +%s) - t0 )) s (limit $limit s)" | tee -a "$W/bench-$suite.log"
  tail -5 "$W/bench-$suite.log"
done
for f in run.tar.gz profile.ncu-rep.gz; do [ -f "$W/$f" ] && mv "$W/$f" "$FINAL/"; done
tar -C "$W" -czf "$FINAL/logs.tar.gz" .
ls -la "$FINAL"
