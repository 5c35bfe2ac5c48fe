#!/usr/bin/env bash
# One `perfmodel collect` on the lent GPU (H100 or H200), packed for the trip back (at most 8 files come back from $OUT).
#
# Run from the repository root on the device, carrying .whl (the nvtx wheel: ../shared/device/wheels.sh nvtx):
#     bash scripts/device_collect.sh [SUITE] [extra perfmodel collect arguments...]
# Set PERFMODEL_GIT_COMMIT to this checkout's commit in the run command (the device copy's .git may be stale).
# It installs the carried wheels, runs `python3 -m perfmodel collect --suite SUITE` (default seed, with Nsight
# Compute) under a time limit (COLLECT_LIMIT_S, default 450 s; on expiry the collector gets SIGINT, marks the run
# interrupted and keeps what it measured, and `--resume` can finish it), then leaves in $OUT:
#     device.txt          GPU, driver, clocks, ncu version before the run
#     collect.log         the collector's progress and messages
#     run.tar.gz          the whole run folder without the .ncu-rep (run.json, tables/, ncu/ exports and logs)
#     profile.ncu-rep.gz  the Nsight Compute report, when it is under 15 MB compressed
#     raw.csv, details.csv  the ncu exports the parser read (-> tests/data/h100/ in the repository)
#     parse-tests.log     tests/test_ncu_parse.py run against those exports on the device
#     summary.txt         key figures of the run (timings, overhead, launch, determinism, ncu session)
# The whole script stays under 9 minutes with the default limit.
# RESUME_FROM=path/run.tar.gz continues that run (`perfmodel collect --resume`) instead of starting one: a suite
# longer than one device call is collected over several calls.
set -uo pipefail
SUITE="${1:-seed}"
shift || true
LIMIT_S="${COLLECT_LIMIT_S:-450}"

source scripts/device_setup.sh  # $OUT, an empty $RUNS, the carried wheels, PYTHONPATH

{
  date -Is
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw \
    --format=csv 2>&1
  (command -v ncu || ls /usr/local/cuda/bin/ncu) 2>&1
  (ncu --version || /usr/local/cuda/bin/ncu --version) 2>&1 | tail -1
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

t0=$(date +%s)
if [ -n "${RESUME_FROM:-}" ]; then
  # continue a run brought back from an earlier call (its run.tar.gz, carried in an ignored folder)
  tar -C "$RUNS" -xzf "$RESUME_FROM" || { echo "cannot unpack $RESUME_FROM"; exit 1; }
  resume_dir=$(ls -d "$RUNS"/*/ | head -1)
  timeout -s INT -k 30 "$LIMIT_S" python3 -m perfmodel collect --resume "${resume_dir%/}" "$@" 2>&1 \
    | tee "$OUT/collect.log"
else
  timeout -s INT -k 30 "$LIMIT_S" python3 -m perfmodel collect --suite "$SUITE" --out "$RUNS" "$@" 2>&1 \
    | tee "$OUT/collect.log"
fi
rc=${PIPESTATUS[0]}
echo "perfmodel collect exit status $rc after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/collect.log"

run_dir=$(ls -d "$RUNS"/*/ 2>/dev/null | head -1)
if [ -z "$run_dir" ]; then
  echo "no run folder was created"
  exit 1
fi
run_dir=${run_dir%/}
run_id=$(basename "$run_dir")

tar -C "$RUNS" --exclude='*.ncu-rep' -czf "$OUT/run.tar.gz" "$run_id"
if [ -f "$run_dir/profile.ncu-rep" ]; then
  gzip -c "$run_dir/profile.ncu-rep" > /tmp/profile.ncu-rep.gz
  if [ "$(stat -c %s /tmp/profile.ncu-rep.gz)" -lt 15000000 ]; then
    mv /tmp/profile.ncu-rep.gz "$OUT/profile.ncu-rep.gz"
  else
    echo "profile.ncu-rep.gz is $(stat -c %s /tmp/profile.ncu-rep.gz) bytes: too large to bring back"
  fi
fi
for f in raw.csv details.csv; do
  [ -f "$run_dir/ncu/$f" ] && cp "$run_dir/ncu/$f" "$OUT/$f"
done

if [ -f "$OUT/raw.csv" ] && [ -f "$OUT/details.csv" ]; then
  mkdir -p tests/data/h100
  cp "$OUT/raw.csv" "$OUT/details.csv" tests/data/h100/
  python3 -m pytest -q -p no:cacheprovider tests/test_ncu_parse.py 2>&1 | tee "$OUT/parse-tests.log" | tail -15
fi

python3 - "$run_dir" <<'PY' 2>&1 | tee "$OUT/summary.txt"
import json, sys
import pandas as pd
from runstore.reader import load_run
pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)
run = load_run(sys.argv[1])
print("run", run.run_id, "status", run.status)
env = run.environment
for k in ("gpu_name", "sm_count", "driver_version", "cuda_version", "torch_version", "triton_version",
          "cudnn_version", "ncu_version", "git_commit", "git_dirty", "clocks_during_timing"):
    print(f"  {k}: {env.get(k)}")
print("ncu:", json.dumps({k: v for k, v in (run.meta.get("ncu") or {}).items() if k != "sessions"}))
for s in (run.meta.get("ncu") or {}).get("sessions", []):
    print("  session:", json.dumps({k: v for k, v in s.items() if k != "command"})[:1500])
print("problems:", run.meta.get("problems"))
print("wall_s:", run.meta.get("wall_s"), "phases_s:", run.meta.get("phases_s"))
for r in run.meta.get("resumes") or []:
    print("  resume at", r.get("at"), "wall_s:", r.get("wall_s"), "phases_s:", r.get("phases_s"))
t = run.table("timings")
print(t[["impl", "config_id", "status", "time_ms", "spread_pct", "stable", "tflops", "bare_time_ms",
         "overhead_pct", "n_inputs", "sm_clock_mhz", "error"]].to_string(index=False))
print(run.table("correctness")[["impl", "status", "max_abs_err", "budget_abs_err", "doc_allclose",
                                "doc_max_err_ok"]].to_string(index=False))
print(run.table("launch")[["impl", "status", "host_launch_us", "time_ms", "launch_share"]].to_string(index=False))
print(run.table("determinism")[["impl", "status", "n_runs", "n_identical"]].to_string(index=False))
print(run.table("census").drop(columns=["run_id", "B", "H", "S", "D", "causal", "dtype"]).to_string(index=False))
print(run.table("ceilings")[["name", "value", "unit", "status", "error"]].to_string(index=False))
st = run.table("stalls")
if not st.empty:
    top = st.sort_values("fraction", ascending=False).groupby("impl").head(3)
    print(top[["impl", "kernel", "reason", "cycles_per_issue", "fraction"]].to_string(index=False))
m = run.table("ncu_metrics")
if not m.empty:
    keep = ["duration_ns", "sm_clock_hz", "registers_per_thread", "achieved_occupancy_pct", "tensor_pipe_pct",
            "tensor_gmma_pipe_pct", "branch_uniformity_pct", "dram_read_bytes", "warp_cycles_per_issue"]
    wide = m[m["metric"].isin(keep)].pivot_table(index=["impl", "kernel_index"], columns="metric", values="value",
                                                 aggfunc="first")
    print(wide.to_string())
    print("ncu_metrics rows:", len(m), "kernels:", len(m[["impl", "config_id", "kernel_index"]].drop_duplicates()))
a = run.table("ablation")
if not a.empty:
    print(a[["config_id", "switch", "measure", "status", "gain", "gain_ci_low", "gain_ci_high", "on_time_ms",
             "off_time_ms", "error"]].to_string(index=False, max_colwidth=60))
    v = run.table("ablation_variants")
    print(v.groupby(["config_id", "status"]).size().to_string())
PY
ls -la "$OUT"
exit 0
