"""What each of the plan's constraints is worth, from the run's ablation (collectors/sweep/ablation.py), as DataFrames.

The fair measure of a technique is the ablation: the same kernel timed with only that technique switched, over
the same candidate configs and with the case timing settings, so the gain belongs to the technique. The stage
chain (stage k against stage k−1, perfmodel.reports.limits.constraint_table) is kept beside it, labelled as such: a
stage file changes more than its one technique. The Amdahl bound comes from the counters of the variant with
the technique off when Nsight Compute profiled it (else of the stage before the removing stage).

A constraint that no switch of the ablated kernel removes is `not_ablatable`, with the kernel's reason (its
module's NOT_ABLATABLE, recorded in run.json's `ablation`), never a number.
"""

from __future__ import annotations

import math

import pandas as pd

from perfmodel.plan.constraint_map import amdahl_max_gain
from perfmodel.reports.analysis import NAN, _model, as_float as _f, run_configs as _configs, stage_order
from perfmodel.reports.compare import case_samples, time_intervals
from perfmodel.reports.limits import attributable_fraction, constraint_table, stall_table
from perfmodel.runs import Run
from runstore.schema import CONFIG_COLUMNS

FAIR_MEASURE = ("The ablation is the fair measure: it times the same kernel with only that technique switched, over "
                "the same candidate configs and timing settings, so the gain belongs to the technique; the stage "
                "chain (stage k vs k−1) also carries everything else the stage file changes.")

EVIDENCE_COLUMNS = [
    "run_id", *CONFIG_COLUMNS, "constraint", "name", "claimed_gain_low", "claimed_gain_high", "impl", "switch",
    "technique", "ablation_status", "ablation_gain", "ablation_ci_low", "ablation_ci_high", "ablation_on",
    "ablation_off", "flip_status", "flip_gain", "flip_ci_low", "flip_ci_high", "stage_chain_gain",
    "stage_chain_ci_low", "stage_chain_ci_high", "stage_chain",
    "amdahl_max_gain", "amdahl_basis", "verdict", "reason",
]


def ablation_rows(run: Run) -> pd.DataFrame:
    """The run's `ablation` table with numeric columns as floats (empty when the run has no ablation)."""
    a = run.table("ablation")
    for c in ("gain", "gain_ci_low", "gain_ci_high", "on_time_ms", "off_time_ms"):
        a[c] = pd.to_numeric(a[c], errors="coerce")
    return a


def _ids(text) -> list[int]:
    return [int(x) for x in str(text or "").split(",") if x.strip().isdigit()]


def claim_verdict(gain: float, low_ci: float, high_ci: float, claim_low: float, claim_high: float) -> str:
    """One phrase: the measured gain's 95% interval against zero and against the plan's claimed band."""
    if not math.isfinite(gain):
        return "not measured"
    parts = []
    if math.isfinite(low_ci) and math.isfinite(high_ci):
        if low_ci > 0:
            parts.append("the technique pays")
        elif high_ci < 0:
            parts.append("the technique costs time here")
        else:
            parts.append("no effect beyond noise")
        lo, hi = low_ci, high_ci
    else:
        lo = hi = gain
    if math.isfinite(claim_low) and math.isfinite(claim_high):
        if hi < claim_low:
            parts.append("below the plan's claim")
        elif lo > claim_high:
            parts.append("above the plan's claim")
        else:
            parts.append("consistent with the plan's claim")
    return "; ".join(parts)


def _chain_ci(samples: dict, impl, before, config_id: str) -> tuple[float, float]:
    """The stage chain's gain interval (stage `impl` against `before`) from both stages' samples, else NaN."""
    from collectors.timing.stats import ratio_gain_ci

    a, b = samples.get((str(before), config_id)), samples.get((str(impl), config_id))
    if a is None or b is None or not len(a) or not len(b):
        return NAN, NAN
    _, lo, hi = ratio_gain_ci(a, b)
    return lo, hi


def _declared(run: Run) -> dict:
    d = run.meta.get("ablation")
    return d if isinstance(d, dict) else {}


def constraint_evidence(run: Run, model=None, chain: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per config and constraint (and switch, where several remove one constraint): the plan's claimed gain, the
    ablation gain (best-with vs best-without, with its 95% interval; primary), the one-switch flip at the tuned
    config, the stage-chain gain (labelled), the Amdahl bound from the counters, and a verdict. `chain`: the run's
    `limits.constraint_table` for `model`, where the caller has it already."""
    model = _model(model)
    abl = ablation_rows(run)
    chain = constraint_table(run, model) if chain is None else chain
    stalls = stall_table(run, model)
    declared = _declared(run)
    samples = case_samples(run)
    rows = []
    for cfg in _configs(run):
        a = abl[abl["config_id"] == cfg.id]
        ch = chain[chain["config_id"] == cfg.id]
        for c in model.constraints:
            cid = int(c.id)
            low, high = _f(c.gain_low), _f(c.gain_high)
            crow = ch[ch["constraint"] == cid]
            chain_gain = _f(crow["measured_gain"].iloc[0]) if not crow.empty else NAN
            chain_text = (f"{crow['removed_by'].iloc[0]} vs {crow['before'].iloc[0]}"
                          if not crow.empty and crow["before"].iloc[0] else "")
            chain_lo, chain_hi = (_chain_ci(samples, crow["removed_by"].iloc[0], crow["before"].iloc[0], cfg.id)
                                  if chain_text else (NAN, NAN))
            base = {"run_id": run.run_id, "config_id": cfg.id, **cfg.as_dict(), "constraint": cid, "name": c.name,
                    "claimed_gain_low": low, "claimed_gain_high": high, "stage_chain_gain": chain_gain,
                    "stage_chain_ci_low": chain_lo, "stage_chain_ci_high": chain_hi, "stage_chain": chain_text}
            mine = a[[cid in _ids(t) for t in a["constraints"]]] if not a.empty else a
            if mine.empty:
                reasons = [f"{impl}: {info['not_ablatable'][str(cid)]}" for impl, info in declared.items()
                           if str(cid) in (info.get("not_ablatable") or {})]
                if reasons:
                    status, reason = "not_ablatable", "; ".join(reasons)
                elif declared:
                    status = "not_ablatable"
                    reason = f"no switch of {', '.join(declared)} removes this constraint"
                else:
                    status = "not_measured"
                    reason = ("the run has no ablation (collected with --no-ablation, before the ablation phase "
                              "existed, or no stage that declares switches was measured)")
                f, _ = (attributable_fraction(run, cid, crow["before"].iloc[0], cfg, stalls)
                        if not crow.empty and crow["before"].iloc[0] else (NAN, ""))
                rows.append({**base, "impl": None, "switch": None, "technique": None, "ablation_status": status,
                             "ablation_gain": NAN, "ablation_ci_low": NAN, "ablation_ci_high": NAN,
                             "ablation_on": None, "ablation_off": None, "flip_status": None, "flip_gain": NAN,
                             "flip_ci_low": NAN, "flip_ci_high": NAN, "amdahl_max_gain": amdahl_max_gain(f),
                             "amdahl_basis": f"stalls of {crow['before'].iloc[0]}" if math.isfinite(f) else "",
                             "verdict": status.replace("_", " "), "reason": reason})
                continue
            for (impl, switch), g in mine.groupby(["impl", "switch"], sort=False):
                best = g[g["measure"] == "best"]
                flip = g[g["measure"] == "flip"]
                b = best.iloc[0] if not best.empty else None
                fl = flip.iloc[0] if not flip.empty else None
                gain = _f(b["gain"]) if b is not None else NAN
                ci_lo = _f(b["gain_ci_low"]) if b is not None else NAN
                ci_hi = _f(b["gain_ci_high"]) if b is not None else NAN
                # Amdahl: the share of the technique-off variant's stall cycles this constraint accounts for
                f, basis = NAN, ""
                if b is not None and b["off_variant_id"]:
                    label = f"{impl}#{b['off_variant_id']}"
                    f, _ = attributable_fraction(run, cid, label, cfg, stalls)
                    basis = f"stalls of {label} (technique off)" if math.isfinite(f) else ""
                if not math.isfinite(f) and not crow.empty and crow["before"].iloc[0]:
                    f, _ = attributable_fraction(run, cid, crow["before"].iloc[0], cfg, stalls)
                    basis = f"stalls of {crow['before'].iloc[0]} (stage before)" if math.isfinite(f) else ""
                status = str(b["status"]) if b is not None else "not_measured"
                rows.append({**base, "impl": impl, "switch": switch, "technique": g["technique"].iloc[0],
                             "ablation_status": status, "ablation_gain": gain, "ablation_ci_low": ci_lo,
                             "ablation_ci_high": ci_hi,
                             "ablation_on": b["on_variant"] if b is not None else None,
                             "ablation_off": b["off_variant"] if b is not None else None,
                             "flip_status": str(fl["status"]) if fl is not None else None,
                             "flip_gain": _f(fl["gain"]) if fl is not None else NAN,
                             "flip_ci_low": _f(fl["gain_ci_low"]) if fl is not None else NAN,
                             "flip_ci_high": _f(fl["gain_ci_high"]) if fl is not None else NAN,
                             "amdahl_max_gain": amdahl_max_gain(f), "amdahl_basis": basis,
                             "verdict": claim_verdict(gain, ci_lo, ci_hi, low, high) if status == "ok"
                             else status.replace("_", " "),
                             "reason": (b["error"] or "") if b is not None and status != "ok" else ""})
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS)


SHIFT_COLUMNS = ["run_id", *CONFIG_COLUMNS, "impl", "switch", "reason", "on_fraction", "off_fraction", "delta"]


def stall_shift(run: Run, model=None) -> pd.DataFrame:
    """Per config and switch (best-with vs best-without): each stall reason's share of stall cycles with the
    technique on and off, and the change (on − off), from the variants Nsight Compute profiled."""
    abl = ablation_rows(run)
    stalls = stall_table(run, model)
    if abl.empty or stalls.empty:
        return pd.DataFrame(columns=SHIFT_COLUMNS)
    rows = []
    best = abl[(abl["measure"] == "best") & abl["on_variant_id"].notna() & abl["off_variant_id"].notna()]
    for r in best.itertuples():
        s = stalls[stalls["config_id"] == r.config_id]
        on = s[s["impl"] == f"{r.impl}#{r.on_variant_id}"].set_index("reason")["fraction"]
        off = s[s["impl"] == f"{r.impl}#{r.off_variant_id}"].set_index("reason")["fraction"]
        if on.empty or off.empty:
            continue
        for reason in sorted(set(on.index) | set(off.index)):
            a, b = _f(on.get(reason)), _f(off.get(reason))
            rows.append({"run_id": run.run_id, "config_id": r.config_id,
                         **{k: getattr(r, k) for k in ("B", "H", "S", "D", "causal", "dtype")}, "impl": r.impl,
                         "switch": r.switch, "reason": reason, "on_fraction": a, "off_fraction": b,
                         "delta": a - b if math.isfinite(a) and math.isfinite(b) else NAN})
    return pd.DataFrame(rows, columns=SHIFT_COLUMNS)


REGRESSION_COLUMNS = ["run_id", *CONFIG_COLUMNS, "impl", "before", "time_ms", "before_time_ms", "slowdown",
                      "interval", "explained_by"]


def _adds(impl: str) -> tuple[str, ...] | None:
    """The switches whose techniques stage `impl` adds (kernels' registry), None for an impl it does not know (a
    user's plan): then the switches removing the constraints the stage removes are shown instead."""
    import kernels

    try:
        return kernels.get_stage(impl).adds
    except KeyError:
        return None


def stage_regressions(run: Run, model=None) -> pd.DataFrame:
    """The check the plan forgot: every stage slower than its predecessor beyond noise (its time interval entirely
    above the predecessor's), with the ablation figure of the technique(s) the stage adds."""
    model = _model(model)
    order = sorted(model.stages, key=lambda s: int(s.index))
    t = run.table("timings")
    t = t[t["status"] == "ok"]
    t = pd.concat([t, time_intervals(t)], axis=1)  # the same interval rule as `perfmodel compare`
    abl = ablation_rows(run)
    rows = []
    for cid, g in t.groupby("config_id", sort=False):
        by_impl = {r["impl"]: r for r in g.to_dict("records")}
        for prev, cur in zip(order, order[1:]):
            a, b = by_impl.get(prev.impl), by_impl.get(cur.impl)
            if a is None or b is None:
                continue
            a_hi, how_a = _f(a["time_ms_high"]), a["time_interval"]
            b_lo, how_b = _f(b["time_ms_low"]), b["time_interval"]
            if not (math.isfinite(a_hi) and math.isfinite(b_lo)) or b_lo <= a_hi:
                continue
            explained = []
            removes = [int(x) for x in (cur.removes or [])]
            adds = _adds(cur.impl)
            ab = abl[(abl["config_id"] == cid) & (abl["measure"] == "best")] if not abl.empty else abl
            for r in ab.itertuples():
                relevant = r.switch in adds if adds is not None else bool(set(_ids(r.constraints)) & set(removes))
                if relevant and math.isfinite(_f(r.gain)):
                    explained.append(f"{r.switch} {_f(r.gain):+.1%} [{_f(r.gain_ci_low):+.1%}, "
                                     f"{_f(r.gain_ci_high):+.1%}] (ablation of {r.impl})")
            rows.append({"run_id": run.run_id, "config_id": cid, **{k: b[k] for k in ("B", "H", "S", "D", "causal",
                                                                                     "dtype")},
                         "impl": cur.impl, "before": prev.impl, "time_ms": _f(b["time_ms"]),
                         "before_time_ms": _f(a["time_ms"]), "slowdown": _f(b["time_ms"]) / _f(a["time_ms"]) - 1,
                         "interval": how_b if how_a == how_b else f"{how_b} / {how_a}",
                         "explained_by": "; ".join(explained) or
                         ("no ablation of the technique(s) this stage adds ("
                          + (f"switches {', '.join(adds)}" if adds else
                             f"constraints {', '.join(map(str, removes)) or 'none'}") + ")")})
    out = pd.DataFrame(rows, columns=REGRESSION_COLUMNS)
    order_idx = stage_order(model)
    return out.sort_values(["config_id", "impl"], key=lambda s: s.map(order_idx) if s.name == "impl" else s) \
        .reset_index(drop=True) if not out.empty else out
