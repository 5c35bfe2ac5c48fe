"""The plan's success gates (the Einstein model file's `[[gates]]`) evaluated on one run.

Each gate ends in one of:
- `pass` / `fail`: the run measured what the gate needs, and the figure meets / misses the threshold;
- `not_measured`: the run cannot decide it (the config is not in the run, fewer configs than the gate asks for,
  fewer determinism repetitions than it asks for, no counters); the reason is given, never a pass;
- `report`: the gate has no number (e.g. "minimal barriers"): the figure is shown for a person to judge.

A failure seen on part of what a gate covers is a failure even when the rest was not measured (one wrong config
already breaks "correct on all configs"); a pass needs all of it.

How comparisons read (the model file's notes): `approx` passes within ±rel_tol of the target and also above it
(a "~110 TFLOPS" target is met by 130); `between` is read as a floor at its low end ("above 260 also meets the
intent"); `==` with threshold 1 means "true for every case covered".
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from kernels.suites import SEED, get_suite
from kernels.workload import AttentionConfig
from perfmodel.analysis import _model, config_of, stall_table
from perfmodel.runs import Run

GATE_COLUMNS = ["gate", "stage", "impl", "kind", "status", "measured", "threshold", "detail", "quote", "configs"]
# The document's "20+ configs" (seed/einstein-triton-integration.md, Minimum Viable).
MIN_SUITE_CONFIGS = 20
# FA3-class peers in order of preference: FA3 itself when installed, else cuDNN (ANCHORS: FA3 cannot be built on
# the lent machine; cuDNN is the FA3-class peer there).
FA3_CLASS_PEERS = ("fa3", "sdpa_cudnn")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    return f"{x:.3g}" if ax < 10 else f"{x:.1f}" if ax < 1000 else f"{x:,.0f}"


def _same_shape(df: pd.DataFrame, cfg: AttentionConfig) -> pd.DataFrame:
    """Rows of `df` for `cfg`'s shape, preferring its dtype, else any dtype the run used for that shape."""
    if df.empty:
        return df
    exact = df[df["config_id"] == cfg.id]
    if not exact.empty:
        return exact
    m = ((df["B"] == cfg.B) & (df["H"] == cfg.H) & (df["S"] == cfg.S) & (df["D"] == cfg.D)
         & (df["causal"].astype(bool) == cfg.causal))
    return df[m]


class _Gate:
    """Accessors over one gate record (the model's dataclass) with the file's optional fields."""

    def __init__(self, g):
        self.g = g
        self.id = str(g.id)
        self.stage = int(g.stage)
        self.kind = str(getattr(g, "kind", "required"))
        self.metric = str(getattr(g, "metric", ""))
        self.comparison = str(getattr(g, "comparison", "report"))
        self.threshold = getattr(g, "threshold", None)
        self.threshold_high = getattr(g, "threshold_high", None)
        self.rel_tol = getattr(g, "rel_tol", None)
        self.configs = str(getattr(g, "configs", ""))
        self.measurable = bool(getattr(g, "measurable", True))
        self.note = str(getattr(g, "note", "") or "")
        self.quote = str(getattr(g, "quote", ""))

    def threshold_text(self) -> str:
        c, t = self.comparison, self.threshold
        if c == "report" or t is None:
            return "no number (judged by a person)"
        if c == "approx":
            return f"≈ {_fmt(t)} ± {self.rel_tol:.0%} (or above)" if self.rel_tol else f"≈ {_fmt(t)}"
        if c == "between":
            return f"{_fmt(t)}–{_fmt(self.threshold_high)} (floor {_fmt(t)})"
        if c == "==" and t == 1.0:
            return "true for every case"
        return f"{c} {_fmt(t)}"

    def judge(self, value: float) -> str:
        c, t = self.comparison, self.threshold
        if not math.isfinite(value):
            return "not_measured"
        ok = {
            ">=": lambda: value >= t, ">": lambda: value > t, "<=": lambda: value <= t, "<": lambda: value < t,
            "==": lambda: value == t,
            "approx": lambda: value >= t * (1 - (self.rel_tol or 0.0)),
            "between": lambda: value >= t,
        }[c]()
        return "pass" if ok else "fail"


def _scope(gate: _Gate) -> list[AttentionConfig]:
    """The configs a gate covers, from its `configs` text."""
    text = gate.configs.lower()
    if text.startswith("fa3-grid"):
        return get_suite("fa3-grid")
    if text.startswith("batching"):
        return [SEED.with_(B=32)]
    return [SEED]


def _row(gate: _Gate, impl: str | None, status: str, measured: float | None, detail: str) -> dict:
    return {"gate": gate.id, "stage": gate.stage, "impl": impl, "kind": gate.kind, "status": status,
            "measured": measured if measured is not None else float("nan"), "threshold": gate.threshold_text(),
            "detail": detail, "quote": gate.quote, "configs": gate.configs}


def _bool_all(gate: _Gate, impl: str, df: pd.DataFrame, column: str, configs: list[AttentionConfig],
              need: int, what: str) -> dict:
    """A '== 1.0' gate over a boolean column: fail if any covered case is false, pass if `need` are true."""
    seen, bad = 0, []
    mine = df[df["impl"] == impl]
    present = {(int(b), int(h), int(s_), int(d), bool(c)) for b, h, s_, d, c in
               zip(mine["B"], mine["H"], mine["S"], mine["D"], mine["causal"])}
    for cfg in configs:
        if (cfg.B, cfg.H, cfg.S, cfg.D, cfg.causal) not in present:
            continue
        sub = _same_shape(mine, cfg)
        if sub.empty:
            continue
        for v, st in zip(sub[column], sub["status"] if "status" in sub else [None] * len(sub)):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                if st in ("failed", "wrong"):
                    bad.append(cfg.id)
                    seen += 1
                continue
            seen += 1
            if not bool(v):
                bad.append(cfg.id)
    if bad:
        return _row(gate, impl, "fail", 0.0, f"{what} false for {len(bad)} of {seen} configs: {', '.join(bad[:3])}")
    if seen == 0:
        return _row(gate, impl, "not_measured", None, f"the run has no {what} result for {impl} on "
                    f"{gate.configs}")
    if seen < need:
        return _row(gate, impl, "not_measured", None, f"{what} true on all {seen} configs measured, but the gate "
                    f"covers {need}")
    return _row(gate, impl, "pass", 1.0, f"{what} true on {seen} of {seen} configs")


def _tflops(run: Run, impl: str, cfg: AttentionConfig) -> tuple[float, str]:
    t = run.table("timings")
    sub = _same_shape(t[(t["impl"] == impl) & (t["status"] == "ok")], cfg)
    if not sub.empty:
        return float(sub["tflops"].iloc[0]), f"{impl} at {sub['config_id'].iloc[0]}"
    b = run.table("batching")
    sub = _same_shape(b[b["impl"] == impl], cfg)
    if not sub.empty and pd.notna(sub["time_ms"].iloc[0]):
        c = config_of(sub.iloc[0])
        return c.tflops_at(float(sub["time_ms"].iloc[0])), f"{impl} at {c.id} (batching table)"
    return float("nan"), f"the run did not time {impl} at {cfg.id}"


def _tflops_by_shape(ok: pd.DataFrame, impl: str) -> dict[tuple, tuple[str, float]]:
    """(B, H, S, D, causal) -> (dtype, TFLOP/s) of `impl`'s ok timings, fp16 preferred where both exist."""
    out: dict[tuple, tuple[str, float]] = {}
    sub = ok[ok["impl"] == impl]
    for B, H, S, D, causal, dtype, tflops in zip(sub["B"], sub["H"], sub["S"], sub["D"], sub["causal"],
                                                 sub["dtype"], sub["tflops"]):
        key = (int(B), int(H), int(S), int(D), bool(causal))
        if key not in out or dtype == "fp16":
            out[key] = (dtype, float(tflops))
    return out


def _median_vs_peer(run: Run, gate: _Gate, impl: str) -> dict:
    t = run.table("timings")
    ok = t[t["status"] == "ok"]
    peer = next((p for p in FA3_CLASS_PEERS if (ok["impl"] == p).any()), None)
    if peer is None:
        return _row(gate, impl, "not_measured", None, "no FA3-class peer (fa3, sdpa_cudnn) was timed in this run")
    mine, theirs = _tflops_by_shape(ok, impl), _tflops_by_shape(ok, peer)
    ratios = []
    for cfg in _scope(gate):
        key = (cfg.B, cfg.H, cfg.S, cfg.D, cfg.causal)
        if key in mine and key in theirs:
            ratios.append(mine[key][1] / theirs[key][1])
    if not ratios:
        return _row(gate, impl, "not_measured", None, f"no config of {gate.configs} has both {impl} and {peer} timed")
    med = statistics.median(ratios)
    if len(ratios) < MIN_SUITE_CONFIGS:
        return _row(gate, impl, "not_measured", med, f"median {med:.2f}× vs {peer} over only {len(ratios)} "
                    f"config(s); the plan asks for {MIN_SUITE_CONFIGS}+ (run --suite fa3-grid)")
    return _row(gate, impl, gate.judge(med), med, f"median of {len(ratios)} configs vs {peer}")


def _evaluate(run: Run, gate: _Gate, impl: str) -> dict:
    m = gate.metric
    configs = _scope(gate)
    need = MIN_SUITE_CONFIGS if gate.configs.lower().startswith("fa3-grid") else len(configs)
    if m.startswith("timings.tflops /"):
        return _median_vs_peer(run, gate, impl)
    if not gate.measurable and m != "census.bar_sync":
        return _row(gate, impl, "not_measured", None, gate.note or "not measurable by the toolkit (no number to check)")
    if m == "timings.status":
        t = run.table("timings")
        sub = pd.concat([_same_shape(t[t["impl"] == impl], c) for c in configs])
        if sub.empty:
            return _row(gate, impl, "not_measured", None, f"the run has no {impl} case on {gate.configs}")
        failed = sub[sub["status"] == "failed"]
        if not failed.empty:
            err = str(failed["error"].iloc[0] or "")[:120]
            return _row(gate, impl, "fail", 0.0, f"{impl} failed: {err}")
        return _row(gate, impl, "pass", 1.0, f"{len(sub)} case(s) ran without failing (status "
                    f"{', '.join(sorted(set(sub['status'])))})")
    if m == "correctness.doc_allclose":
        return _bool_all(gate, impl, run.table("correctness"), "doc_allclose", configs, need,
                         "allclose(rtol=1e-3, atol=2e-3)")
    if m == "correctness.max_abs_err":
        c = run.table("correctness")
        sub = pd.concat([_same_shape(c[c["impl"] == impl], cfg) for cfg in configs])
        vals = pd.to_numeric(sub["max_abs_err"], errors="coerce").dropna()
        if vals.empty:
            return _row(gate, impl, "not_measured", None, f"the run has no error measurement for {impl} on "
                        f"{gate.configs}")
        worst = float(vals.max())
        return _row(gate, impl, gate.judge(worst), worst, f"max |out − ref| over {len(vals)} config(s)")
    if m == "timings.tflops":
        value, where = _tflops(run, impl, configs[0])
        return _row(gate, impl, gate.judge(value), value if math.isfinite(value) else None, where)
    if m == "batching.speedup_vs_b1":
        b = run.table("batching")
        sub = _same_shape(b[b["impl"] == impl], configs[0])
        vals = pd.to_numeric(sub["speedup_vs_b1"], errors="coerce").dropna()
        if vals.empty:
            return _row(gate, impl, "not_measured", None, f"the run has no batching measurement of {impl} at B=32 "
                        "(run --suite batching)")
        v = float(vals.iloc[0])
        return _row(gate, impl, gate.judge(v), v, f"per-sequence latency B=1 → B=32 of {impl}")
    if m.startswith("stalls:"):
        reason = m.split(":", 1)[1]
        s = stall_table(run)
        sub = _same_shape(s[s["impl"] == impl], configs[0])
        if sub.empty:
            return _row(gate, impl, "not_measured", None, f"no stall counters for {impl} at {configs[0].id} "
                        "(ncu did not run, or was not allowed)")
        v = float(sub[sub["reason"] == reason]["fraction"].sum())
        return _row(gate, impl, gate.judge(v), v, f"{reason} share of stall cycles at {sub['config_id'].iloc[0]}")
    if m == "determinism.bitwise_identical":
        d = run.table("determinism")
        sub = _same_shape(d[d["impl"] == impl], configs[0])
        if sub.empty:
            return _row(gate, impl, "not_measured", None, f"the run has no determinism check of {impl}")
        n_runs = int(sub["n_runs"].iloc[0])
        n_same = int(sub["n_identical"].iloc[0])
        want = 1000 if "1000" in gate.configs else n_runs
        if n_same < n_runs:
            return _row(gate, impl, "fail", 0.0, f"{n_same} of {n_runs} repetitions bitwise identical")
        if n_runs < want:
            return _row(gate, impl, "not_measured", None, f"{n_same} of {n_runs} identical, but the plan asks "
                        f"for {want}")
        return _row(gate, impl, "pass", 1.0, f"{n_same} of {n_runs} repetitions bitwise identical")
    if m == "census.bar_sync":
        c = run.table("census")
        sub = _same_shape(c[c["impl"] == impl], configs[0])
        vals = pd.to_numeric(sub["bar_sync"], errors="coerce").dropna()
        if vals.empty:
            return _row(gate, impl, "not_measured", None, f"no census of {impl}")
        return _row(gate, impl, "report", float(vals.iloc[0]), f"bar.sync in {impl}'s PTX; {gate.note}")
    return _row(gate, impl, "not_measured", None, f"metric {m!r} is not one the toolkit evaluates")


def evaluate_gates(run: Run, model=None) -> pd.DataFrame:
    """One row per gate of the model: status (pass | fail | not_measured | report), the measured figure, the
    threshold and a one-line detail."""
    model = _model(model)
    impls = {int(s.index): s.impl for s in model.stages}
    rows = [_evaluate(run, _Gate(g), impls.get(int(g.stage))) for g in model.gates]
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def failed(gates: pd.DataFrame, include_stretch: bool = False) -> pd.DataFrame:
    """The gates that fail (required ones only unless `include_stretch`)."""
    bad = gates[gates["status"] == "fail"]
    return bad if include_stretch else bad[bad["kind"] != "stretch"]
