#!/usr/bin/env bash
# One device call for issue 23 (the GPU time and the cached launch path): the fast path's GPU-marked tests, the launch
# probe (host path cached and full, CUDA graph against the host loop, every stage and the peers at the seed config),
# then `perfmodel collect --suite seed` with Nsight Compute (scripts/device_collect.sh). At most 8 files come back:
# run.tar.gz, profile.ncu-rep.gz and logs.tar.gz (everything else: the test log, the probe, collect's log and summary,
# the ncu exports).
set -uo pipefail
FINAL="${OUT:-/tmp/perfmodel-out}"
W=/tmp/call23
rm -rf "$W" && mkdir -p "$W"
export OUT="$W"
source scripts/device_setup.sh
nvidia-smi > "$W/nvidia-smi.txt" 2>&1
t0=$(date +%s)
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_fastlaunch.py > "$W/gpu-tests.log" 2>&1
echo "rc=$? after $(( $(date +%s) - t0 )) s" >> "$W/gpu-tests.log"
tail -4 "$W/gpu-tests.log"
t0=$(date +%s)
timeout 150 python3 scripts/device_launch_probe.py > "$W/probe.log" 2>&1
echo "rc=$? after $(( $(date +%s) - t0 )) s" >> "$W/probe.log"
cat "$W/probe.log"
COLLECT_LIMIT_S="${COLLECT_LIMIT_S:-300}" bash scripts/device_collect.sh seed > "$W/device-collect.out" 2>&1
tail -25 "$W/device-collect.out"
for f in run.tar.gz profile.ncu-rep.gz; do [ -f "$W/$f" ] && mv "$W/$f" "$FINAL/"; done
tar -C "$W" -czf "$FINAL/logs.tar.gz" .
ls -la "$FINAL"
