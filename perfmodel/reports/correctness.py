"""Correctness as measured: each case's output against the float64 reference, beside its budget and the plan's checks.

The collector checks every (implementation, config) before timing it (collectors/timing/bench.py, `check_output`) and
stores the result in the run's `correctness` table (runstore/schema.py): the largest absolute error against
the float64 reference (kernels/reference.py), the error budget (2x PyTorch's own low-precision error at the same
inputs, flash-attention's rule), and the design document's two verdicts (`torch.allclose(out, ref, rtol=1e-3,
atol=2e-3)` and max error <= 0.06). Only a case within budget is timed; one outside is `wrong`.

The largest error is the same for every correct implementation of a config (the rounding of the output to its
16-bit dtype sets it), so the table also carries the output against the reference rounded to the output dtype
(kernels.reference.rounding_error): the most units in the last place apart (`max_ulp`), the fraction of elements
exactly rounded (`exact_frac`) and the RMS distance in ULPs (`rms_ulp`). These tell implementations apart; the
budget stays the pass/fail rule. A run made before they were measured has them null: `rounded_measured` is False
for its checked cases, and the report and dashboard say "not measured" there, never a number.

This module only reads that table: it adds the error as a fraction of the budget and orders the rows (config,
then stages in order, then peers); nothing is recomputed or filled in, so a case that could not be checked
(`failed`, `unavailable`) keeps null errors and its reason in `error`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from perfmodel.reports.analysis import _model, impl_kinds, stage_order
from perfmodel.runs import Run
from runstore.schema import CONFIG_COLUMNS

# Against the reference rounded to the output dtype (runstore/schema.py's correctness table).
ROUNDED_COLUMNS = ["max_ulp", "exact_frac", "rms_ulp"]
CORRECTNESS_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "impl", "kind", "stage_order", "status", "max_abs_err", "budget_abs_err",
    "err_over_budget", "within_budget", "doc_allclose", "doc_max_err_ok", "max_rel_err", "rel_l2_err",
    *ROUNDED_COLUMNS, "rounded_measured", "error",
]
SUMMARY_COLUMNS = ["impl", "kind", "stage_order", "n_cases", "n_checked", "n_within_budget", "n_doc_allclose",
                   "n_doc_max_err_ok", "worst_err_over_budget", "n_rounded_measured", "worst_max_ulp",
                   "lowest_exact_frac", "worst_rms_ulp"]
# Statuses whose output was compared with the reference (a `failed` or `unavailable` case has no output).
CHECKED = ("ok", "wrong")


def _bool(v):
    """True / False, or None for a verdict the run does not have (null, NaN)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return {"true": True, "false": False}.get(v.strip().lower())
    return bool(v)


def correctness_table(run: Run, model=None) -> pd.DataFrame:
    """Per case (implementation x config): status, max abs error, the budget, max error / budget, within budget,
    the plan's allclose and max_err <= 0.06 verdicts, the relative errors, the figures against the rounded
    reference (NaN and `rounded_measured` False where the run has none) and the one-line error, ordered by config
    and then stage order (peers after the stages)."""
    order = stage_order(_model(model))
    c = run.table("correctness")
    if c.empty:
        return pd.DataFrame(columns=CORRECTNESS_COLUMNS)
    c = c.copy()
    for col in ("max_abs_err", "budget_abs_err", "max_rel_err", "rel_l2_err", *ROUNDED_COLUMNS):
        c[col] = pd.to_numeric(c[col], errors="coerce").astype(float)
    # checked against the rounded reference: a checked case of a run made before the figures has them null
    c["rounded_measured"] = c["status"].isin(CHECKED) & c[ROUNDED_COLUMNS].notna().all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c["err_over_budget"] = np.where(c["budget_abs_err"] > 0, c["max_abs_err"] / c["budget_abs_err"], np.nan)
    for col in ("doc_allclose", "doc_max_err_ok"):
        c[col] = pd.Series([_bool(v) for v in c[col]], index=c.index, dtype=object)
    # a row written without the flag but with both figures: the flag is the comparison the collector makes
    c["within_budget"] = pd.Series(
        [w if w is not None else (bool(e <= b) if math.isfinite(e) and math.isfinite(b) else None)
         for w, e, b in zip((_bool(v) for v in c["within_budget"]), c["max_abs_err"], c["budget_abs_err"])],
        index=c.index, dtype=object)
    c["kind"] = impl_kinds(run, c["impl"], order)
    c["stage_order"] = c["impl"].map(order).fillna(len(order)).astype(int)
    configs = list(dict.fromkeys(c["config_id"]))
    c["_config"] = c["config_id"].map({cid: i for i, cid in enumerate(configs)})
    c = c.sort_values(["_config", "stage_order", "impl"], kind="stable")
    return c.reindex(columns=CORRECTNESS_COLUMNS).reset_index(drop=True)


def correctness_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per implementation, over the configs of `table` (a `correctness_table`, possibly filtered): cases, cases
    checked against the reference, how many are within budget and pass each of the plan's checks, the largest
    error as a fraction of the budget, and over the cases measured against the rounded reference (their number,
    NaN figures when none) the largest max_ulp, the lowest exact_frac and the largest rms_ulp."""
    rows = []
    for impl, g in table.groupby("impl", sort=False):
        checked = g[g["status"].isin(CHECKED)]
        ratio = checked["err_over_budget"].astype(float)
        rounded = checked[checked["rounded_measured"] == True]  # noqa: E712 (None-safe)
        rows.append({"impl": impl, "kind": g["kind"].iloc[0], "stage_order": int(g["stage_order"].iloc[0]),
                     "n_cases": len(g), "n_checked": len(checked),
                     "n_within_budget": int((checked["within_budget"] == True).sum()),  # noqa: E712 (None-safe)
                     "n_doc_allclose": int((checked["doc_allclose"] == True).sum()),  # noqa: E712
                     "n_doc_max_err_ok": int((checked["doc_max_err_ok"] == True).sum()),  # noqa: E712
                     "worst_err_over_budget": float(ratio.max()) if ratio.notna().any() else math.nan,
                     "n_rounded_measured": len(rounded),
                     "worst_max_ulp": float(rounded["max_ulp"].max()) if len(rounded) else math.nan,
                     "lowest_exact_frac": float(rounded["exact_frac"].min()) if len(rounded) else math.nan,
                     "worst_rms_ulp": float(rounded["rms_ulp"].max()) if len(rounded) else math.nan})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return out.sort_values(["stage_order", "impl"], kind="stable").reset_index(drop=True)
