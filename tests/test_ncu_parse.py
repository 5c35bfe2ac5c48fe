"""Nsight Compute: the command line collectors/ncu/profile.py builds, and the CSV parsers of collectors/ncu/parse.py
on real exports.

The exports under tests/data/h100/ were captured on the lent H100 by this project's own collector
(scripts/device_collect.sh: `perfmodel collect --suite seed`, then `ncu --import profile.ncu-rep --csv --page raw
--print-units base` and `--page details`); they are never written by hand to suit the parser.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from collectors.ncu import metrics as M, parse as ncu_parse, profile as ncu_profile

DATA = Path(__file__).resolve().parent / "data" / "h100"
RAW = DATA / "raw.csv"
DETAILS = DATA / "details.csv"


# ---- the command line and small pieces (no export needed) ------------------------------------------------------
def test_one_command_with_nvtx_filters_clock_control_sections_and_metrics(tmp_path):
    names = [ncu_profile.range_name("stage0_baseline", "B16-H16-S2048-D64-causal-fp16"),
             ncu_profile.range_name("sdpa_cudnn", "B16-H16-S2048-D64-causal-fp16")]
    cmd = ncu_profile.build_command("/usr/local/cuda/bin/ncu", tmp_path / "profile",
                                    ["python", "-m", "collectors.sweep.worker"], names)
    joined = " ".join(cmd)
    assert cmd[:2] == ["/usr/local/cuda/bin/ncu", "--nvtx"]
    # push/pop ranges of the perfmodel domain: '<domain>@<range>/' (ANCHORS.md: push/pop needs the slash)
    includes = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--nvtx-include"]
    assert includes == ["perfmodel@stage0_baseline:B16-H16-S2048-D64-causal-fp16/",
                        "perfmodel@sdpa_cudnn:B16-H16-S2048-D64-causal-fp16/"]
    assert "--clock-control none" in joined and "--replay-mode kernel" in joined
    # the kernels' source goes into the report, so the GUI shows the Triton source on another machine
    assert "--import-source yes" in joined
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "--section"] == list(M.SECTIONS)
    metrics = cmd[cmd.index("--metrics") + 1].split(",")
    for short in ("branch_uniformity_pct", "tensor_pipe_pct", "dram_read_bytes", "dram_write_bytes",
                  "dram_throughput_pct", "sm_clock_hz", "duration_ns", "stall_long_scoreboard"):
        assert M.METRICS[short] in metrics
    assert cmd[cmd.index("-o") + 1] == str(tmp_path / "profile")
    assert cmd[-3:] == ["python", "-m", "collectors.sweep.worker"]


def test_range_names_refuse_nvtx_filter_syntax():
    with pytest.raises(ValueError):
        ncu_profile.range_name("stage/0", "B1-H1-S1-D64-full-fp16")
    with pytest.raises(ValueError):
        ncu_profile.range_name("a@b", "B1-H1-S1-D64-full-fp16")


def test_metric_mapping_round_trips_and_names_every_stall_reason():
    assert len(set(M.METRICS.values())) == len(M.METRICS)  # one short name per raw metric
    for reason in M.STALL_REASONS:
        raw = M.stall_metric(reason)
        assert raw == f"smsp__average_warps_issue_stalled_{reason}_per_issue_active.ratio"
        assert M.stall_reason(raw) == reason and M.short_name(raw) == f"stall_{reason}"
    assert M.stall_reason("smsp__average_warp_latency_per_inst_issued.ratio") is None
    assert M.short_name("not__a_known.metric") == "not__a_known.metric"


def test_numbers_with_thousands_separators_and_missing_values():
    assert ncu_parse.to_number("1,234,567.5") == 1234567.5
    assert ncu_parse.to_number("0.25") == 0.25 and ncu_parse.to_number("-3") == -3.0
    assert ncu_parse.to_number("1e3") == 1000.0
    for cell in ("", "n/a", "(128, 1, 1)", None, "12,34"):
        assert math.isnan(ncu_parse.to_number(cell))


def test_metrics_the_gpu_lacks_are_dropped_not_sent():
    # what `ncu --query-metrics` lists: counters without rollups
    available = {"gpu__time_duration", "sm__pipe_tensor_op_hmma_cycles_active", "sm__throughput"}
    kept, dropped = ncu_profile.filter_available(
        ["gpu__time_duration.sum", "sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active",
         "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active", "launch__registers_per_thread"],
        available)
    # gmma is not listed although other sm__ counters are: dropped; launch__ is not covered by the listing: kept
    assert kept == ["gpu__time_duration.sum",
                    "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active",
                    "launch__registers_per_thread"]
    assert dropped == ["sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active"]
    assert ncu_profile.filter_available(["x__y.sum"], None) == (["x__y.sum"], [])


def test_session_failures_are_classified_in_one_sentence():
    perm = ncu_profile.classify_failure("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to "
                                        "access NVIDIA GPU Performance Counters")
    assert isinstance(perm, ncu_profile.NcuPermission) and "permission" in str(perm)
    none = ncu_profile.classify_failure("==WARNING== No kernels were profiled.")
    assert isinstance(none, ncu_profile.NcuNoKernels)
    assert ncu_profile.classify_failure("==PROF== Disconnected from process 1") is None


def test_ncu_is_looked_for_on_path_and_in_the_usual_places(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "ncu"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'NVIDIA (R) Nsight Compute Command Line Profiler\nVersion 2025.3.1.0 (b)'\n")
    fake.chmod(0o755)
    monkeypatch.delenv("PERFMODEL_NCU", raising=False)
    monkeypatch.setenv("PATH", str(fake.parent))
    assert ncu_profile.find_ncu() == fake
    assert ncu_profile.ncu_version(fake) == "2025.3.1.0"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(ncu_profile, "DEFAULT_PATHS", ())
    monkeypatch.setattr(ncu_profile, "DEFAULT_GLOBS", ())
    assert ncu_profile.find_ncu() is None
    with pytest.raises(ncu_profile.NcuMissing, match="--no-ncu"):
        ncu_profile.require_ncu()


def test_nvtx_cells_give_back_the_case():
    known = {"stage0_baseline:B16-H16-S2048-D64-causal-fp16": ("stage0_baseline", "B16-H16-S2048-D64-causal-fp16")}
    cell = '1  "perfmodel:stage0_baseline:B16-H16-S2048-D64-causal-fp16:none:none:none:none:none:none"'
    assert ncu_parse.case_of(cell, known) == ("stage0_baseline", "B16-H16-S2048-D64-causal-fp16")
    assert ncu_parse.case_of(cell) == ("stage0_baseline", "B16-H16-S2048-D64-causal-fp16")
    assert ncu_parse.case_of('1  "<default domain>:something:none"') is None


# ---- real exports from the H100 ---------------------------------------------------------------------------------
needs_exports = pytest.mark.skipif(
    not (RAW.is_file() and DETAILS.is_file()),
    reason="tests/data/h100/{raw,details}.csv are not captured yet (scripts/device_collect.sh makes them)",
)


@pytest.fixture(scope="module")
def raw():
    return ncu_parse.parse_raw_csv(RAW.read_text())


@pytest.fixture(scope="module")
def details():
    return ncu_parse.parse_details_csv(DETAILS.read_text())


@pytest.fixture(scope="module")
def tidy(raw, details):
    return ncu_parse.tidy_metrics(raw, details)


@needs_exports
def test_raw_export_has_one_row_per_kernel_with_units_and_numbers(raw):
    assert len(raw) >= 2
    assert ncu_parse.find_nvtx_column(raw.columns) is not None
    assert raw.attrs["units"].get("gpu__time_duration.sum")
    duration = raw["gpu__time_duration.sum"]
    assert (duration > 0).all()
    # counts above 999 are printed with thousands separators; they must come through as plain numbers
    assert raw["dram__bytes_read.sum"].max() > 1000


@needs_exports
def test_every_profiled_kernel_maps_to_a_case_of_ours_or_a_peer(raw, tidy):
    nvtx = ncu_parse.find_nvtx_column(raw.columns)
    cases = [ncu_parse.case_of(c) for c in raw[nvtx]]
    assert all(c is not None for c in cases), "a profiled kernel outside every perfmodel range"
    impls = {c[0] for c in cases}
    assert any(i.startswith("stage") for i in impls)
    assert any(not i.startswith("stage") for i in impls), "no peer kernel (not ours) in the export"
    assert set(tidy["impl"]) == impls


@needs_exports
def test_tidy_metrics_carry_short_names_canonical_units_and_sane_values(tidy):
    per_kernel = tidy[tidy["source"] == "raw"].pivot_table(
        index=["impl", "config_id", "kernel_index"], columns="metric", values="value", aggfunc="first")
    assert (per_kernel["duration_ns"] > 0).all()
    units = tidy[tidy["source"] == "raw"].drop_duplicates("metric").set_index("metric")["unit"]
    assert units["duration_ns"] == "ns" and units["dram_read_bytes"] == "byte" and units["sm_clock_hz"] == "Hz"
    # H100 SXM5 SM clock: at most 1.98 GHz boost (NVIDIA H100 datasheet); well above idle under load
    assert per_kernel["sm_clock_hz"].between(0.5e9, 2.1e9).all()
    assert per_kernel["registers_per_thread"].between(1, 255).all()
    assert per_kernel["dram_throughput_pct"].between(0, 100).all()


@needs_exports
def test_branch_uniformity_reads_zero_where_a_kernel_has_no_branches(tidy):
    per_kernel = tidy[tidy["source"] == "raw"].pivot_table(
        index=["impl", "config_id", "kernel_index"], columns="metric", values="value", aggfunc="first")
    assert "branch_uniformity_pct" in per_kernel
    assert per_kernel["branch_uniformity_pct"].between(0, 100).all()
    # The collector profiles the straight-line exp2 ceiling kernel (collectors.ceilings.ceilings.PROBES) in every
    # session: a real kernel that executes no branch, whose uniformity ncu reports as 0 (not applicable, not divergent).
    no_branch = per_kernel[per_kernel["branch_instructions"] == 0]
    assert "probe_exp2" in set(no_branch.index.get_level_values("impl")), "no branch-free kernel in the export"
    assert (no_branch["branch_uniformity_pct"] == 0).all()
    branchy = per_kernel[per_kernel["branch_instructions"] > 0]
    assert (branchy["branch_uniformity_pct"] > 0).all()


@needs_exports
def test_stalls_sum_to_the_warp_cycles_per_issued_instruction(tidy):
    stalls = ncu_parse.stalls_table(tidy)
    assert not stalls.empty
    assert set(stalls["reason"]) <= set(M.STALL_REASONS)
    keys = ["impl", "config_id", "kernel", "kernel_index"]
    assert stalls.groupby(keys)["fraction"].sum().sub(1).abs().max() < 1e-9
    total = stalls.groupby(keys)["cycles_per_issue"].sum()
    wcpi = tidy[tidy["metric"] == "warp_cycles_per_issue"].set_index(keys)["value"]
    joined = total.to_frame("sum").join(wcpi.rename("wcpi"), how="inner")
    assert not joined.empty
    assert ((joined["sum"] - joined["wcpi"]).abs() <= 0.05 * joined["wcpi"] + 0.05).all()


@needs_exports
def test_details_export_has_the_sections_and_joins_the_raw_kernels(details, tidy):
    assert {"section", "metric_name", "unit", "value"} <= set(details.columns)
    assert details["section"].nunique() >= 5
    assert (details["metric_name"] == "Duration").any()
    d = tidy[tidy["source"] == "details"]
    assert not d.empty and d["kernel_index"].notna().all()
    assert d["metric"].str.contains(": ").all()
