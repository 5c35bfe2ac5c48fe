#!/usr/bin/env bash
# Issue 14's check on one lent GPU: the seed config and the batching configs collected as two shards (one after the
# other on the one GPU), merged, and collected once unsharded; then the merged run's medians against the unsharded
# run's, case by case, within their 95% CIs. At most 8 files come back from $OUT; this leaves 5:
#     device.txt    GPU, driver, clocks, versions before the run
#     check.log     every command's output, with its exit status and seconds
#     compare.txt   `perfmodel compare UNSHARDED MERGED --agreement`: per case both medians, both CIs, agree or not
#     summary.txt   per run: status, cases, wall time, shard record, ceilings per GPU; the merge's provenance
#     runs.tar.gz   the four run folders (shard 1, shard 2, merged, unsharded) without .ncu-rep files
#
# Run from the repository root on the device, carrying .whl (the nvtx wheel: ../shared/device/wheels.sh nvtx) and
# with PERFMODEL_GIT_COMMIT set to this checkout's commit (the device copy's .git may be stale):
#     PERFMODEL_GIT_COMMIT=<sha> bash scripts/device_shard_check.sh
# Without Nsight Compute and the ablation, two peers (cuDNN, SDPA flash), 20 determinism calls, so that it fits
# one device call: about 5 minutes on the lent H200 (each collect is limited to LIMIT_S, default 170 s; on expiry
# it is interrupted and keeps what it measured, and the merge then refuses the cut-off shard, which check.log says).
set -uo pipefail
LIMIT_S="${LIMIT_S:-170}"

source scripts/device_setup.sh  # $OUT, an empty $RUNS, the carried wheels, PYTHONPATH

{
  date -Is
  nvidia-smi --query-gpu=index,name,uuid,driver_version,clocks.sm,clocks.mem,temperature.gpu,power.draw \
    --format=csv 2>&1
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# the seed config and the batching configs (kernels/suites.py: B = 1, 8, 32 at the seed's other values)
CONFIGS=(--config B=16,H=16,S=2048,D=64,causal --config B=1,H=16,S=2048,D=64,causal
         --config B=8,H=16,S=2048,D=64,causal --config B=32,H=16,S=2048,D=64,causal)
COMMON=(--refs sdpa_cudnn,sdpa_flash --no-ncu --no-ablation --determinism 20)

step() {  # step NAME COMMAND...: run it under the time limit, log its output, exit status and seconds
  local name=$1 t0 rc
  shift
  t0=$(date +%s)
  echo "== $name: $*" | tee -a "$OUT/check.log"
  timeout -s INT -k 30 "$LIMIT_S" "$@" 2>&1 | tee -a "$OUT/check.log"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit status $rc after $(( $(date +%s) - t0 )) s" | tee -a "$OUT/check.log"
  return "$rc"
}

step shard-1 python3 -m perfmodel collect "${CONFIGS[@]}" "${COMMON[@]}" --shard 1/2 --out "$RUNS/shards"
step shard-2 python3 -m perfmodel collect "${CONFIGS[@]}" "${COMMON[@]}" --shard 2/2 --out "$RUNS/shards"
step merge python3 -m perfmodel merge "$RUNS"/shards/*/ --out "$RUNS/merged"
step unsharded python3 -m perfmodel collect "${CONFIGS[@]}" "${COMMON[@]}" --out "$RUNS/unsharded"
unsharded=$(ls -d "$RUNS"/unsharded/*/ 2>/dev/null | head -1)
if [ -d "$RUNS/merged" ] && [ -n "$unsharded" ]; then
  python3 -m perfmodel compare "${unsharded%/}" "$RUNS/merged" --agreement > "$OUT/compare.txt" 2>&1
  echo "compare exit status $?" >> "$OUT/compare.txt"
  cat "$OUT/compare.txt"
else
  echo "no merged or no unsharded run to compare" | tee "$OUT/compare.txt"
fi

python3 - "$RUNS" <<'PY' 2>&1 | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path
from runstore.reader import is_run_dir, load_run
root = Path(sys.argv[1])
folders = sorted((root / "shards").glob("*/")) + [root / "merged"] + sorted((root / "unsharded").glob("*/"))
for folder in folders:
    if not is_run_dir(folder):
        print(f"{folder.relative_to(root)}: no run")
        continue
    run = load_run(folder)
    cases = run.table("cases")
    print(f"{run.path.relative_to(root)}: {run.status}, {len(cases)} cases "
          f"({cases['status'].value_counts().to_dict() if not cases.empty else {}}), wall_s {run.meta.get('wall_s')}, "
          f"phases {run.meta.get('phases_s')}")
    shard = run.meta.get("shard")
    if shard:
        print("  shard", shard["index"], "/", shard["count"], "configs", shard["configs"], "cost_s",
              shard["shard_cost_s"], "balanced_by", {k: len(v) for k, v in shard["balanced_by"].items()})
    if run.meta.get("merge"):
        print("  merge", json.dumps({k: v for k, v in run.meta["merge"].items() if k != "balanced_by"}))
        for m in run.meta["merged_from"]:
            print("   from", json.dumps({k: m.get(k) for k in ("run_id", "shard", "status", "host", "wall_s")}))
    c = run.table("ceilings")
    if not c.empty:
        ok = c[c["status"] == "ok"]
        print("  ceilings:", len(c), "rows,", ok[["device_index", "gpu_uuid"]].drop_duplicates().values.tolist(),
              ok[ok["name"].isin(["fp16_mma_tflops", "hbm_tbps"])][["name", "value"]].values.tolist())
PY

tar -C "$RUNS" --exclude='*.ncu-rep' -czf "$OUT/runs.tar.gz" .
ls -la "$OUT"
exit 0
