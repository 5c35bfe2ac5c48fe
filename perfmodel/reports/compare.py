"""Timing noise, and two runs compared case by case beyond it.

**A timing's interval.** A run that kept its samples (runstore/schema.py, `timing_samples`) has for every
timed case the bootstrap 95% interval of the median (`time_ms_ci_low`, `time_ms_ci_high`; collectors/timing/stats.py).
A run made before samples were kept has only the 20th and 80th percentiles: its interval is p20–p80 of the
repetitions, labelled `PCT_LABEL` wherever it is shown. Nothing here turns percentiles into a confidence interval:
the p20–p80 range says how noisy ONE repetition is, the CI how well the median of all of them is known, and the two
are not interchangeable (the CI is several times narrower). `time_intervals` picks per row; `with_timing_intervals`
adds the run's intervals to an analysis frame (stages, peers, roofline) and `with_speedup_intervals` gives the
batching table's speed-ups theirs.

**Two runs.** `compare_runs` matches the runs' timings case by case. A case is a `regression` when the new run's
interval lies entirely above the baseline's (new low > base high) AND its median got slower by more than
`threshold_pct` (default `DEFAULT_THRESHOLD_PCT`); an `improvement` in the mirror case. Both runs are read with
the same kind of interval: the bootstrap CIs when both have them, else both p20–p80 (`PAIR_PCT_LABEL`). Separated
intervals with a change below the threshold are `below threshold`; overlapping ones `within noise`; a case not
timed `ok` in both runs is `not comparable`. Runs measured on different GPU models get no verdict on time at all:
every case timed in both is `different GPU` (`premise` says so in one sentence, and which kernel code each run
measured). `perfmodel compare BASE NEW` prints this and exits 1 on a regression (3 on different GPUs), and
`perfmodel report --baseline` shows the same table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from collectors.timing.measure import CI_CONFIDENCE, WIDE_CI_PCT
from collectors.timing.stats import ratio_gain_ci
from perfmodel.runs import Run, gpu_name, kernel_code, per_run
from runstore.schema import CONFIG_COLUMNS, TIMING_GRAPH, TIMING_HOST_LOOP

CI_LABEL = f"{CI_CONFIDENCE:.0%} CI"
PCT_RANGE = "p20–p80 of the repetitions"
PCT_LABEL = f"{PCT_RANGE} (this run kept no samples for a 95% interval)"
PAIR_PCT_LABEL = f"{PCT_RANGE} (the two runs did not both keep samples for a 95% interval)"
OTHER_GPU = "different GPU"  # the verdict of every case timed in two runs of different GPU models
# A slowdown must exceed this (percent of the baseline median) as well as both runs' intervals to fail a CI
# check: the width beyond which the collector calls a median's interval too wide to trust (WIDE_CI_PCT, 2%), so
# a change the measurement could only just resolve does not fail a kernel repository's build.
DEFAULT_THRESHOLD_PCT = WIDE_CI_PCT

# The timings columns that describe a time's noise (runstore/schema.py).
NOISE_COLUMNS = ["time_ms", "time_ms_p20", "time_ms_p80", "time_ms_ci_low", "time_ms_ci_high", "ci_width_pct",
                 "wide_ci"]
INTERVAL_COLUMNS = ["time_ms_low", "time_ms_high", "time_interval"]

# Counters shown beside the time change (short names of collectors/ncu/metrics.py).
KEY_COUNTERS = ("tensor_gmma_pipe_pct", "tensor_pipe_pct", "dram_throughput_pct", "warp_cycles_per_issue",
                "achieved_occupancy_pct", "registers_per_thread", "sm_clock_hz")

COMPARE_COLUMNS = ["impl", *CONFIG_COLUMNS, "status_base", "status_new", "time_ms_base", "time_ms_new",
                   "time_change_pct", "time_ms_low_base", "time_ms_high_base", "time_ms_low_new", "time_ms_high_new",
                   "interval", "change_low_pct", "change_high_pct", "noise_pct", "threshold_pct", "verdict",
                   "tflops_base", "tflops_new"] + [f"{c}_{side}" for c in KEY_COUNTERS for side in ("base", "new")]

NAN = float("nan")


def _f(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return NAN


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    if col not in df.columns:
        return pd.Series(NAN, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float)


# ---- one run's intervals --------------------------------------------------------------------------------------
def time_intervals(df: pd.DataFrame, use_ci=True) -> pd.DataFrame:
    """`time_ms_low`, `time_ms_high`, `time_interval` for each row of a frame with timings columns: the bootstrap
    CI where the row has one (and `use_ci`, a bool or a boolean Series, allows it), else p20–p80 labelled
    PCT_LABEL, else NaN with no label. Columns the frame lacks count as missing."""
    ci_lo, ci_hi = _num(df, "time_ms_ci_low"), _num(df, "time_ms_ci_high")
    p20, p80 = _num(df, "time_ms_p20"), _num(df, "time_ms_p80")
    has_ci = (ci_lo.notna() & ci_hi.notna()) & use_ci
    has_pct = p20.notna() & p80.notna()
    return pd.DataFrame({
        "time_ms_low": np.where(has_ci, ci_lo, np.where(has_pct, p20, NAN)),
        "time_ms_high": np.where(has_ci, ci_hi, np.where(has_pct, p80, NAN)),
        "time_interval": np.where(has_ci, CI_LABEL, np.where(has_pct, PCT_LABEL, None)),
    }, index=df.index)


def with_timing_intervals(frame: pd.DataFrame, run: Run) -> pd.DataFrame:
    """`frame` (rows with `impl` and `config_id`, e.g. analysis.stage_table, peer_table, roofline_table) with the
    run's noise columns it lacks (NOISE_COLUMNS, from the timings table; NaN for a case not timed ok) and its
    intervals (INTERVAL_COLUMNS, `time_intervals`)."""
    out = frame.drop(columns=[c for c in INTERVAL_COLUMNS if c in frame.columns])
    missing = [c for c in NOISE_COLUMNS if c not in out.columns]
    if missing:
        t = run.table("timings")
        t = t[t["status"] == "ok"][["impl", "config_id", *missing]].drop_duplicates(["impl", "config_id"])
        out = out.merge(t, on=["impl", "config_id"], how="left")
        out.index = frame.index
    return pd.concat([out, time_intervals(out)], axis=1)


def case_samples(run: Run) -> dict[tuple[str, str], np.ndarray]:
    """(impl, config_id) -> the case's timed samples (ms), in order; empty for runs that kept none. Split once per
    run object (the table holds every repetition of every case)."""
    def split(run: Run) -> dict[tuple[str, str], np.ndarray]:
        s = run.table("timing_samples")
        out: dict[tuple[str, str], np.ndarray] = {}
        if not s.empty:
            s = s.assign(time_ms=pd.to_numeric(s["time_ms"], errors="coerce"),
                         sample_index=pd.to_numeric(s["sample_index"], errors="coerce"))
            for key, g in s.sort_values("sample_index", kind="stable").groupby(["impl", "config_id"], sort=False):
                out[(str(key[0]), str(key[1]))] = g["time_ms"].to_numpy(float)
        return out

    return per_run(run, "case_samples", split)


def with_speedup_intervals(batching: pd.DataFrame, run: Run) -> pd.DataFrame:
    """analysis.batching_table with `speedup_low`, `speedup_high`, `speedup_interval`: the interval of each
    per-sequence speed-up over B=1 (speedup = B · t(B=1) / t(B)). With both cases' samples it is the bootstrap
    interval of the ratio of medians (collectors.timing.stats.ratio_gain_ci); else the range the two p20–p80 ranges
    allow (B · p20(B=1) / p80(B) to B · p80(B=1) / p20(B)), labelled PCT_LABEL. B=1 has none: its speed-up over
    itself is 1 by definition, not a measurement."""
    out = batching.copy()
    out["speedup_low"], out["speedup_high"], out["speedup_interval"] = NAN, NAN, None
    if out.empty:
        return out
    noise = with_timing_intervals(out[["impl", "config_id"]], run)
    samples = case_samples(run)
    group = ["impl", "H", "S", "D", "causal", "dtype"]
    ones = out[out["B"] == 1].drop_duplicates(group).set_index(group)["config_id"]
    for i, row in out.iterrows():
        key = tuple(row[c] for c in group)
        if key not in ones.index or int(row["B"]) == 1 or not math.isfinite(_f(row["speedup_vs_b1"])):
            continue
        b1, B = ones.loc[key], int(row["B"])
        s1, sb = samples.get((row["impl"], b1)), samples.get((row["impl"], row["config_id"]))
        if s1 is not None and sb is not None and len(s1) > 1 and len(sb) > 1:
            _, lo, hi = ratio_gain_ci(s1, sb, confidence=CI_CONFIDENCE)
            out.loc[i, ["speedup_low", "speedup_high", "speedup_interval"]] = [B * (1 + lo), B * (1 + hi), CI_LABEL]
            continue
        one = noise[(out["impl"] == row["impl"]) & (out["config_id"] == b1)]
        if one.empty:
            continue
        p20_1, p80_1 = _f(one["time_ms_p20"].iloc[0]), _f(one["time_ms_p80"].iloc[0])
        p20_b, p80_b = _f(noise.loc[i, "time_ms_p20"]), _f(noise.loc[i, "time_ms_p80"])
        if all(math.isfinite(v) and v > 0 for v in (p20_1, p80_1, p20_b, p80_b)):
            out.loc[i, ["speedup_low", "speedup_high", "speedup_interval"]] = [B * p20_1 / p80_b, B * p80_1 / p20_b,
                                                                               PCT_LABEL]
    return out


# ---- two runs -------------------------------------------------------------------------------------------------
def _counters(run: Run) -> pd.DataFrame:
    ncu = run.table("ncu_metrics")
    ncu = ncu[ncu["metric"].isin(KEY_COUNTERS)]
    if ncu.empty:
        return pd.DataFrame(columns=["impl", "config_id", *KEY_COUNTERS])
    ncu = ncu.assign(value=pd.to_numeric(ncu["value"], errors="coerce"))
    wide = ncu.pivot_table(index=["impl", "config_id"], columns="metric", values="value", aggfunc="mean")
    return wide.reindex(columns=list(KEY_COUNTERS)).reset_index()


@dataclass(frozen=True)
class Premise:
    """What two runs' times can be judged by: the GPU model each was measured on and the kernel code each measured
    (run.json's kernels_hash, perfmodel.runs.kernel_code)."""

    base_id: str
    new_id: str
    gpu_base: str
    gpu_new: str
    kernels_base: str | None
    kernels_new: str | None
    methods_base: tuple = ()  # how each run's cases were timed (perfmodel.reports.timing_view: cuda_graph, host_loop)
    methods_new: tuple = ()

    @property
    def same_gpu(self) -> bool:
        return self.gpu_base == self.gpu_new

    def gpu_line(self) -> str:
        """Why there is no verdict on time ('' on one GPU model)."""
        if self.same_gpu:
            return ""
        return (f"The runs were measured on different GPUs ({self.gpu_base} for {self.base_id}, {self.gpu_new} for "
                f"{self.new_id}): a change in time is the hardware's as much as the code's, so no case is called a "
                f"regression or an improvement (verdict '{OTHER_GPU}').")

    def kernels_line(self) -> str:
        """Which kernel code the two runs measured, in one sentence."""
        unknown = [i for i, h in ((self.base_id, self.kernels_base), (self.new_id, self.kernels_new)) if not h]
        if unknown:
            return (f"Run {' and '.join(unknown)} does not record the kernel code it measured (no kernels_hash in "
                    "run.json), so whether the two runs ran the same kernel code is unknown.")
        if self.kernels_base == self.kernels_new:
            return (f"Both runs measured the same kernel code (kernels/ hash {self.kernels_new}): a change is the "
                    "machine's, the toolchain's or noise, not the code's.")
        return (f"The runs measured different kernel code (kernels/ hash {self.kernels_base} in {self.base_id}, "
                f"{self.kernels_new} in {self.new_id}): a change is the code's as well as the machine's.")


    def methods_line(self) -> str:
        """Whether the two runs timed their cases the same way, in one sentence ('' when they did)."""
        if self.methods_base == self.methods_new:
            return ""
        label = {TIMING_GRAPH: "the GPU's time by CUDA graph", TIMING_HOST_LOOP: "the host loop"}

        def said(methods):
            return " and ".join(label.get(m, m) for m in methods) or "nothing timed"

        return (f"The runs timed their cases differently ({said(self.methods_base)} in {self.base_id}, "
                f"{said(self.methods_new)} in {self.new_id}): a change includes the method's, largest where the host "
                "launch path is as long as the kernel (short kernels, B=1).")


def premise(run: Run, baseline: Run) -> Premise:
    """The GPU models, kernel code and timing methods of `baseline` and `run` (the new run)."""
    from perfmodel.reports.timing_view import case_methods

    def methods(r: Run) -> tuple:
        return tuple(sorted(set(case_methods(r)["timing_method"])))

    return Premise(baseline.run_id, run.run_id, gpu_name(baseline) or "no GPU", gpu_name(run) or "no GPU",
                   kernel_code(baseline).run_hash, kernel_code(run).run_hash, methods(baseline), methods(run))


def _verdict(change_pct: float, lb: float, hb: float, ln: float, hn: float, threshold_pct: float) -> str:
    if not all(math.isfinite(v) for v in (change_pct, lb, hb, ln, hn)):
        return "no interval"
    if ln > hb:
        return "regression" if change_pct > threshold_pct else "below threshold"
    if hn < lb:
        return "improvement" if change_pct < -threshold_pct else "below threshold"
    return "within noise"


def compare_runs(run: Run, baseline: Run, threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> pd.DataFrame:
    """One row per (impl, config) timed in either run: both medians, the change in percent, both intervals (the
    same kind for both runs: 95% CIs when both have them, else p20–p80), the range of changes those intervals
    allow (`change_low_pct`..`change_high_pct`; it excludes 0 exactly when the intervals are separate), the
    verdict (module docstring; `different GPU` for every case timed in both when the runs' GPU models differ) and
    key counters of both runs."""
    if not (isinstance(threshold_pct, (int, float)) and math.isfinite(threshold_pct) and threshold_pct >= 0):
        raise ValueError(f"the threshold must be a percentage of at least 0, got {threshold_pct!r}.")
    same_gpu = premise(run, baseline).same_gpu
    keys = ["impl", *CONFIG_COLUMNS]
    cols = ["status", "tflops", *NOISE_COLUMNS]
    new = run.table("timings").reindex(columns=keys + cols)
    base = baseline.table("timings").reindex(columns=keys + cols)
    m = base.merge(new, on=keys, how="outer", suffixes=("_base", "_new"))
    both_ci = pd.Series(True, index=m.index)
    for side in ("_base", "_new"):
        both_ci &= _num(m, f"time_ms_ci_low{side}").notna() & _num(m, f"time_ms_ci_high{side}").notna()
    for side in ("_base", "_new"):
        sub = m[[f"{c}{side}" for c in NOISE_COLUMNS]].rename(columns=lambda c: c.removesuffix(side))
        iv = time_intervals(sub, use_ci=both_ci)
        m[f"time_ms_low{side}"], m[f"time_ms_high{side}"] = iv["time_ms_low"], iv["time_ms_high"]
        m[f"time_interval{side}"] = iv["time_interval"]
    rows = []
    for r in m.to_dict("records"):
        row = {k: r[k] for k in keys}
        row.update({"status_base": r["status_base"], "status_new": r["status_new"], "threshold_pct": threshold_pct})
        for c in ("time_ms", "tflops", "time_ms_low", "time_ms_high"):
            row[f"{c}_base"], row[f"{c}_new"] = _f(r[f"{c}_base"]), _f(r[f"{c}_new"])
        mb, lb, hb = row["time_ms_base"], row["time_ms_low_base"], row["time_ms_high_base"]
        mn, ln, hn = row["time_ms_new"], row["time_ms_low_new"], row["time_ms_high_new"]
        if not (r["status_base"] == "ok" and r["status_new"] == "ok") or not (mb > 0 and mn > 0):
            row.update(time_change_pct=NAN, change_low_pct=NAN, change_high_pct=NAN, noise_pct=NAN, interval=None,
                       verdict="not comparable")
            rows.append(row)
            continue
        change = (mn / mb - 1) * 100
        finite = all(math.isfinite(v) and v > 0 for v in (lb, hb, ln, hn))
        row.update(time_change_pct=change,
                   change_low_pct=(ln / hb - 1) * 100 if finite else NAN,
                   change_high_pct=(hn / lb - 1) * 100 if finite else NAN,
                   noise_pct=max((hb - lb) / mb, (hn - ln) / mn) * 100 if finite else NAN,
                   interval=(None if not finite else r["time_interval_new"] if r["time_interval_new"] == CI_LABEL
                             else PAIR_PCT_LABEL),
                   verdict=_verdict(change, lb, hb, ln, hn, threshold_pct) if same_gpu else OTHER_GPU)
        rows.append(row)
    out = pd.DataFrame(rows, columns=[c for c in COMPARE_COLUMNS if not c.startswith(KEY_COUNTERS)])
    for side, r in (("base", baseline), ("new", run)):
        c = _counters(r).rename(columns={k: f"{k}_{side}" for k in KEY_COUNTERS})
        out = out.merge(c, on=["impl", "config_id"], how="left")
    return out.reindex(columns=COMPARE_COLUMNS).sort_values(["config_id", "impl"]).reset_index(drop=True)


def regressions(comparison: pd.DataFrame) -> pd.DataFrame:
    """The cases that got slower beyond both runs' intervals and the threshold (what fails a CI check)."""
    return comparison[comparison["verdict"] == "regression"]


def no_longer_ok(comparison: pd.DataFrame) -> pd.DataFrame:
    """Cases timed `ok` in the baseline that the new run did not time (wrong, failed, missing ...)."""
    return comparison[(comparison["status_base"] == "ok") & (comparison["status_new"] != "ok")]
