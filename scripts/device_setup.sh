# Sourced by the device scripts (device_collect.sh, device_bench.sh, device_shard_check.sh): the output folder the
# device tool brings back ($OUT), an empty runs folder ($RUNS, from RUNS_DIR; left as it is with DEVICE_KEEP_RUNS=1,
# which device_bench.sh sets so a bench after a collect in the same call keeps its run), the carried wheels (.whl:
# nvtx, ncu_report) installed into /tmp/site, and the checkout plus those wheels on PYTHONPATH. Exits the script
# when a wheel does not install.
OUT="${OUT:-/tmp/perfmodel-out}"
RUNS="${RUNS_DIR:-/tmp/perfmodel-runs}"
mkdir -p "$OUT"
if [ "${DEVICE_KEEP_RUNS:-0}" != 1 ]; then rm -rf "$RUNS" && mkdir -p "$RUNS"; fi
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || { echo "wheel install failed"; exit 1; }
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
