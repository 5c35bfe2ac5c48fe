"""What a gate covers and how it reads: the configs in its scope (its suite's, at batch size `B` when it gives
one), how many must be measured, its threshold in words, the verdict a figure gets against it (`judge`), and the
`perfmodel collect` command that would measure what it reads (one per gate, or one for several).
"""

from __future__ import annotations

import math

import pandas as pd

from kernels.suites import SUITES, get_suite, suite_determinism_runs
from kernels.workload import AttentionConfig
from perfmodel.plan.einstein import DETERMINISM_METRIC, Gate


_LOWER_IS_BETTER = ("<=", "<")


def fmt_value(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    return f"{x:.3g}" if ax < 10 else f"{x:.1f}" if ax < 1000 else f"{x:,.0f}"


def same_shape(df: pd.DataFrame, cfg: AttentionConfig) -> pd.DataFrame:
    """Rows of `df` for `cfg`'s shape, preferring its dtype, else any dtype the runs used for that shape."""
    return rows_for(df, [cfg])


def rows_for(df: pd.DataFrame, configs: list[AttentionConfig]) -> pd.DataFrame:
    """`same_shape(df, c)` for each config of `configs`, one after the other (a row twice where two configs read
    it), found through one index of `df` by config id and by shape rather than a boolean mask per config."""
    if df.empty or not configs:
        return df.iloc[0:0] if not configs else df
    by_id: dict[str, list[int]] = {}
    for i, cid in enumerate(df["config_id"]):
        by_id.setdefault(cid, []).append(i)
    by_shape: dict[tuple, list[int]] = {}
    if any(c.id not in by_id for c in configs):  # the shape columns are read only when a config needs them
        shapes = zip(df["B"], df["H"], df["S"], df["D"], df["causal"].astype(bool))
        for i, shape in enumerate(shapes):
            by_shape.setdefault(shape, []).append(i)
    rows = [i for c in configs for i in by_id.get(c.id) or by_shape.get((c.B, c.H, c.S, c.D, c.causal), [])]
    return df.iloc[rows]


# ---- what a gate covers and how it reads ------------------------------------------------------------------------
def scope(gate: Gate) -> list[AttentionConfig]:
    """The configs a gate covers: its suite's, only those of batch size `B` when it gives one."""
    if not gate.suite:
        return []
    return [c for c in get_suite(gate.suite) if gate.B is None or c.B == gate.B]


def configs_needed(gate: Gate) -> int:
    return gate.min_configs or len(scope(gate))


def scope_text(gate: Gate) -> str:
    if gate.configs or not gate.suite:
        return gate.configs
    n = len(scope(gate))
    text = f"{gate.suite}{f', B={gate.B}' if gate.B else ''} ({n} config{'s' if n != 1 else ''}"
    text += f", {gate.min_configs} needed)" if gate.min_configs and gate.min_configs < n else ")"
    return text + (f", {gate.repetitions} repetitions" if gate.repetitions else "")


def threshold_text(gate: Gate) -> str:
    c, t = gate.comparison, gate.threshold
    if gate.judged_by_person or t is None:
        return "no number (judged by a person)"
    if c == "approx":
        text = f"≈ {fmt_value(t)} ± {gate.rel_tol:.0%} (or above)" if gate.rel_tol else f"≈ {fmt_value(t)}"
    elif c == "between":
        text = f"{fmt_value(t)}–{fmt_value(gate.threshold_high)} (floor {fmt_value(t)})"
    elif c == "==" and t == 1.0:
        text = "true for every case"
    else:
        text = f"{c} {fmt_value(t)}"
    return text + (f"; stage {gate.stage}'s target" if gate.threshold_from == "stage target" else "")


def judge(gate: Gate, value: float) -> str:
    c, t = gate.comparison, gate.threshold
    if not math.isfinite(value):
        return "not_measured"
    ok = {
        ">=": lambda: value >= t, ">": lambda: value > t, "<=": lambda: value <= t, "<": lambda: value < t,
        "==": lambda: value == t,
        "approx": lambda: value >= t * (1 - (gate.rel_tol or 0.0)),
        "between": lambda: value >= t,
    }[c]()
    return "pass" if ok else "fail"


def measure_command(gate: Gate) -> str:
    """The `perfmodel collect` command that measures what `gate` reads."""
    if not gate.suite:
        return ""
    cmd = f"perfmodel collect --suite {gate.suite}"
    if gate.metric == DETERMINISM_METRIC and gate.repetitions \
            and (suite_determinism_runs(gate.suite) or 0) < gate.repetitions:
        cmd += f" --determinism {gate.repetitions}"
    return cmd


def one_run_for(gates: list[Gate]) -> str:
    """The smallest suite that holds every config of `gates` (a command that measures them all), or ''."""
    wanted = {c.id for g in gates for c in scope(g)}
    reps = max((g.repetitions or 0 for g in gates if g.metric == DETERMINISM_METRIC), default=0)
    fits = [name for name, configs in SUITES.items() if wanted <= {c.id for c in configs}]
    if not wanted or not fits:
        return ""
    name = min(fits, key=lambda n: len(SUITES[n]))
    cmd = f"perfmodel collect --suite {name}"
    return cmd + (f" --determinism {reps}" if reps > (suite_determinism_runs(name) or 0) else "")
