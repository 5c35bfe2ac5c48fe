"""The plan's success gates (the Einstein model file's `[[gates]]`) evaluated on the evidence of one or more runs.

Each gate ends in one of:
- `pass` / `fail`: the runs measured what the gate needs, and the figure meets / misses the threshold;
- `not_measured`: the runs cannot decide it (a covered config not measured, fewer configs than `min_configs`,
  fewer determinism repetitions than `repetitions`, no counters); the reason and the `perfmodel collect` command
  that would measure it are given, never a pass;
- `report`: judged by a person (comparison "report", or `measurable = false`): the figure, where there is one, is
  shown; such a gate never blocks.

A failure seen on part of what a gate covers is a failure even when the rest was not measured (one wrong config
already breaks "correct on all configs"); a pass needs all of it.

Every number a gate is judged by comes from the model file (perfmodel/data/einstein.toml documents the fields):
the threshold (a stage TFLOP/s gate's from its stage's target), the configs (`suite`, `B`), how many of them
must be measured (`min_configs`), the determinism repetitions (`repetitions`), the FA3-class peers (`peers`).
How comparisons read (the model file's notes): `approx` passes within -rel_tol of the target and also above it
(a "~110 TFLOPS" target is met by 130); `between` is read as a floor at its low end ("above 260 also meets the
intent"); `==` with threshold 1 means "true for every case covered".

`evaluate_gates(run)` judges one run, `evaluate_gates_over(runs)` several runs of one GPU model joined
(perfmodel/gates_evidence.py: the newest run's figure where two measured the same case); the `run` column names
the run(s) each figure came from. `exit_status` turns the result into `perfmodel gates`' exit status.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from kernels.suites import SUITES, get_suite, suite_determinism_runs
from kernels.workload import AttentionConfig
from perfmodel.analysis import _model, config_of, stall_table
from perfmodel.einstein import DETERMINISM_METRIC, PEER_RATIO_PREFIX, TFLOPS_METRIC, Gate
from perfmodel.gates_evidence import NOTHING_MEASURED, Evidence
from perfmodel.runs import Run

GATE_COLUMNS = ["gate", "stage", "impl", "kind", "status", "measured", "threshold", "detail", "quote", "configs",
                "run", "command"]
EXIT_PASS, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_NOT_MEASURED = 0, 1, 2, 3
_LOWER_IS_BETTER = ("<=", "<")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    ax = abs(x)
    return f"{x:.3g}" if ax < 10 else f"{x:.1f}" if ax < 1000 else f"{x:,.0f}"


def _same_shape(df: pd.DataFrame, cfg: AttentionConfig) -> pd.DataFrame:
    """Rows of `df` for `cfg`'s shape, preferring its dtype, else any dtype the runs used for that shape."""
    if df.empty:
        return df
    exact = df[df["config_id"] == cfg.id]
    if not exact.empty:
        return exact
    m = ((df["B"] == cfg.B) & (df["H"] == cfg.H) & (df["S"] == cfg.S) & (df["D"] == cfg.D)
         & (df["causal"].astype(bool) == cfg.causal))
    return df[m]


# ---- what a gate covers and how it reads ------------------------------------------------------------------------
def scope(gate: Gate) -> list[AttentionConfig]:
    """The configs a gate covers: its suite's, only those of batch size `B` when it gives one."""
    if not gate.suite:
        return []
    return [c for c in get_suite(gate.suite) if gate.B is None or c.B == gate.B]


def _need(gate: Gate) -> int:
    return gate.min_configs or len(scope(gate))


def _scope_text(gate: Gate) -> str:
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
        text = f"≈ {_fmt(t)} ± {gate.rel_tol:.0%} (or above)" if gate.rel_tol else f"≈ {_fmt(t)}"
    elif c == "between":
        text = f"{_fmt(t)}–{_fmt(gate.threshold_high)} (floor {_fmt(t)})"
    elif c == "==" and t == 1.0:
        text = "true for every case"
    else:
        text = f"{c} {_fmt(t)}"
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


# ---- one gate -----------------------------------------------------------------------------------------------
class _Judge:
    """Evaluates one gate over the evidence; `row` builds its result line."""

    def __init__(self, ev: Evidence, model, gate: Gate, impl: str | None):
        self.ev, self.model, self.g, self.impl = ev, model, gate, impl
        self.configs, self.need = scope(gate), _need(gate)
        self.read: set[str] = set()  # the tables this gate's figure was read from

    def table(self, name: str) -> pd.DataFrame:
        self.read.add(name)
        return self.ev.table(name)

    def row(self, status: str, measured: float | None, detail: str, runs=(), table: str | None = None) -> dict:
        g = self.g
        runs = sorted({str(r) for r in runs if r is not None and r == r})
        if table and self.impl:
            older = [r for r in self.ev.superseded(table, self.impl, [c.id for c in self.configs]) if r not in runs]
            if older:
                detail += f" (newest run's figure; replaces {', '.join(older)})"
        return {"gate": g.id, "stage": g.stage, "impl": self.impl, "kind": g.kind, "status": status,
                "measured": measured if measured is not None else float("nan"), "threshold": threshold_text(g),
                "detail": detail, "quote": g.quote, "configs": _scope_text(g), "run": ", ".join(runs),
                "command": measure_command(g) if status == "not_measured" else ""}

    def rows_of(self, table: str) -> pd.DataFrame:
        df = self.table(table)
        mine = df[df["impl"] == self.impl]
        parts = [_same_shape(mine, c) for c in self.configs]
        return pd.concat(parts) if parts else mine.iloc[0:0]

    def values(self, found: list[tuple[str, float, str]], what: str, missing: str, table: str) -> dict:
        """A numeric gate over the covered configs: `found` holds (config_id, value, run_id) per measured one."""
        found = [f for f in found if math.isfinite(f[1])]
        if not found:
            return self.row("not_measured", None, missing)
        runs = [f[2] for f in found]
        pick = max if self.g.comparison in _LOWER_IS_BETTER else min
        bad = [f for f in found if judge(self.g, f[1]) == "fail"]
        if bad:
            cid, v, _ = pick(bad, key=lambda f: f[1])
            return self.row("fail", v, f"{what} at {cid}" + (f" ({len(bad)} of {len(found)} configs miss)"
                                                             if len(found) > 1 else ""), runs, table)
        cid, v, _ = pick(found, key=lambda f: f[1])
        if len(found) < self.need:
            return self.row("not_measured", v, f"{what} met on {len(found)} config(s), but the gate covers "
                            f"{self.need}", runs, table)
        return self.row("pass", v, f"{what} at {cid}" + (f" (worst of {len(found)} configs)" if len(found) > 1
                                                         else ""), runs, table)

    # -- metrics
    def no_crashes(self) -> dict:
        sub = self.rows_of("timings")
        sub = sub[~sub["status"].isin(NOTHING_MEASURED)]
        if sub.empty:
            return self.row("not_measured", None, f"the runs have no {self.impl} case on {_scope_text(self.g)} that ran")
        runs, failed = sub["run_id"], sub[sub["status"] == "failed"]
        if not failed.empty:
            err = str(failed["error"].iloc[0] or "")[:120]
            return self.row("fail", 0.0, f"{self.impl} failed: {err}", failed["run_id"], "timings")
        n = sub["config_id"].nunique()
        if n < self.need:
            return self.row("not_measured", None, f"{n} config(s) ran without failing, but the gate covers "
                            f"{self.need}", runs, "timings")
        return self.row("pass", 1.0, f"{len(sub)} case(s) ran without failing (status "
                        f"{', '.join(sorted(set(sub['status'].astype(str))))})", runs, "timings")

    def all_true(self, table: str, column: str, what: str) -> dict:
        """A '== 1' gate over a boolean column: fail if any covered case is false (a wrong output counts as false),
        pass if `need` are true; a case that did not run (failed) has no output to judge, so it is not measured."""
        seen, bad, runs, crashed = set(), [], [], []
        for cid, v, st, rid in zip(*(self.rows_of(table)[k] for k in ("config_id", column, "status", "run_id"))):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                crashed += [cid] if st == "failed" else []
                if st != "wrong":
                    continue
                v = False
            seen.add(cid)
            runs.append(rid)
            if not bool(v):
                bad.append(cid)
        if bad:
            return self.row("fail", 0.0, f"{what} false for {len(bad)} of {len(seen)} configs: "
                            f"{', '.join(bad[:3])}", runs, table)
        if not seen:
            why = f" ({self.impl} failed at {', '.join(crashed[:2])}, so there is no output to judge)" * bool(crashed)
            return self.row("not_measured", None, f"the runs have no {what} result for {self.impl} on "
                            f"{_scope_text(self.g)}{why}")
        if len(seen) < self.need:
            return self.row("not_measured", None, f"{what} true on all {len(seen)} configs measured, but the gate "
                            f"covers {self.need}", runs, table)
        return self.row("pass", 1.0, f"{what} true on {len(seen)} of {len(seen)} configs", runs, table)

    def max_error(self) -> dict:
        sub = self.rows_of("correctness")
        found = [(c, float(v), r) for c, v, r in zip(sub["config_id"], pd.to_numeric(sub["max_abs_err"],
                                                                                   errors="coerce"), sub["run_id"])]
        crashed = sub[sub["status"] == "failed"]["config_id"].tolist()
        why = f" ({self.impl} failed at {', '.join(crashed[:2])}, so there is no output to compare)" if crashed else ""
        return self.values(found, "max |out − ref|", f"the runs have no error measurement for {self.impl} on "
                           f"{_scope_text(self.g)}{why}", "correctness")

    def tflops(self) -> dict:
        t, b = self.table("timings"), self.table("batching")
        t = t[(t["impl"] == self.impl) & (t["status"] == "ok")]
        b = b[b["impl"] == self.impl]
        found = []
        for cfg in self.configs:
            sub = _same_shape(t, cfg)
            if not sub.empty:
                found.append((str(sub["config_id"].iloc[0]), float(sub["tflops"].iloc[0]), sub["run_id"].iloc[0]))
                continue
            sub = _same_shape(b, cfg)
            ms = pd.to_numeric(sub["time_ms"], errors="coerce").dropna()
            if not ms.empty:  # the batching table's own timing of that B
                c = config_of(sub.loc[ms.index[0]])
                found.append((f"{c.id} (batching table)", c.tflops_at(float(ms.iloc[0])), sub.loc[ms.index[0], "run_id"]))
        return self.values(found, f"{self.impl} TFLOP/s", f"the runs did not time {self.impl} at "
                           f"{', '.join(c.id for c in self.configs[:2])}", "timings")

    def batching(self) -> dict:
        sub = self.rows_of("batching")
        found = [(c, float(v), r) for c, v, r in zip(sub["config_id"], pd.to_numeric(sub["speedup_vs_b1"],
                                                                                   errors="coerce"), sub["run_id"])]
        bs = ", ".join(str(c.B) for c in self.configs)
        return self.values(found, f"per-sequence speed-up of {self.impl} from B=1", f"the runs have no batching "
                           f"measurement of {self.impl} at B={bs}", "batching")

    def stall_share(self, reason: str) -> dict:
        self.read |= {"stalls", "ncu_metrics"}  # the shares, weighted by the kernels' durations
        s = stall_table(self.ev, self.model)
        s = s[(s["impl"] == self.impl) & (s["reason"] == reason)]
        found = []
        for cfg in self.configs:
            sub = _same_shape(s, cfg)
            if not sub.empty:
                found.append((str(sub["config_id"].iloc[0]), float(sub["fraction"].sum()), sub["run_id"].iloc[0]))
        return self.values(found, f"{reason} share of stall cycles", f"no stall counters for {self.impl} at "
                           f"{_scope_text(self.g)} (ncu did not run, or was not allowed)", "stalls")

    def determinism(self) -> dict:
        sub = self.rows_of("determinism")
        sub = sub[pd.to_numeric(sub["n_runs"], errors="coerce").notna()]
        if sub.empty:
            return self.row("not_measured", None, f"the runs have no determinism check of {self.impl}")
        n_runs, n_same = sub["n_runs"].astype(int), pd.to_numeric(sub["n_identical"], errors="coerce").fillna(0)
        runs, want = sub["run_id"], self.g.repetitions or int(n_runs.min())
        if (n_same < n_runs).any():
            i = (n_same < n_runs).idxmax()
            return self.row("fail", 0.0, f"{int(n_same[i])} of {n_runs[i]} repetitions bitwise identical at "
                            f"{sub.loc[i, 'config_id']}", runs, "determinism")
        if int(n_runs.min()) < want:
            return self.row("not_measured", None, f"{int(n_same.min())} of {int(n_runs.min())} identical, but the "
                            f"plan asks for {want}", runs, "determinism")
        if sub["config_id"].nunique() < self.need:
            return self.row("not_measured", None, f"bitwise identical on {sub['config_id'].nunique()} config(s), "
                            f"but the gate covers {self.need}", runs, "determinism")
        return self.row("pass", 1.0, f"{int(n_same.min())} of {int(n_runs.min())} repetitions bitwise identical",
                        runs, "determinism")

    def median_vs_peer(self) -> dict:
        ok = self.table("timings")
        ok = ok[ok["status"] == "ok"]
        peer = next((p for p in self.g.peers if (ok["impl"] == p).any()), None)
        if peer is None:
            return self.row("not_measured", None, f"no FA3-class peer ({', '.join(self.g.peers)}) was timed in "
                            "these runs")
        mine, theirs = _tflops_by_shape(ok, self.impl), _tflops_by_shape(ok, peer)
        ratios, runs = [], []
        for cfg in self.configs:
            key = (cfg.B, cfg.H, cfg.S, cfg.D, cfg.causal)
            if key in mine and key in theirs:
                ratios.append(mine[key][0] / theirs[key][0])
                runs += [mine[key][1], theirs[key][1]]
        if not ratios:
            return self.row("not_measured", None, f"no config of {_scope_text(self.g)} has both {self.impl} and "
                            f"{peer} timed")
        med = statistics.median(ratios)
        if len(ratios) < self.need:
            return self.row("not_measured", med, f"median {med:.2f}× vs {peer} over only {len(ratios)} config(s); "
                            f"the plan asks for {self.need}", runs, "timings")
        return self.row(judge(self.g, med), med, f"median of {len(ratios)} configs vs {peer}", runs, "timings")

    def by_person(self) -> dict:
        if self.g.metric == "census.bar_sync" and self.configs:
            sub = self.rows_of("census")
            vals = pd.to_numeric(sub["bar_sync"], errors="coerce").dropna()
            if not vals.empty:
                return self.row("report", float(vals.iloc[0]), f"bar.sync in {self.impl}'s PTX; {self.g.note}",
                                [sub.loc[vals.index[0], "run_id"]], "census")
            return self.row("report", None, f"no census of {self.impl} in these runs ({measure_command(self.g)} "
                            "makes one); a person judges it from the count")
        return self.row("report", None, self.g.note or "judged by a person (the gate has no number to check)")

    def evaluate(self) -> dict:
        """The gate's row; a pass read from a table that a run lists and lacks is `not_measured` instead (the lost
        table may hold what fails it)."""
        row = self._evaluate()
        lost = {t: ids for t, ids in self.ev.missing_tables().items() if t in self.read}
        if row["status"] == "pass" and lost:
            t, ids = next(iter(sorted(lost.items())))
            row.update(status="not_measured", command="",
                       detail=f"{row['detail']}, but run {', '.join(ids)} lacks the table {t} it lists, so this "
                              "cannot pass")
        return row

    def _evaluate(self) -> dict:
        m = self.g.metric
        if self.g.judged_by_person:
            return self.by_person()
        if m.startswith(PEER_RATIO_PREFIX):
            return self.median_vs_peer()
        if m.startswith("stalls:"):
            return self.stall_share(m.split(":", 1)[1])
        simple = {"timings.status": self.no_crashes, "correctness.max_abs_err": self.max_error,
                  TFLOPS_METRIC: self.tflops, "batching.speedup_vs_b1": self.batching,
                  DETERMINISM_METRIC: self.determinism,
                  "correctness.doc_allclose": lambda: self.all_true("correctness", "doc_allclose",
                                                                    "allclose(rtol=1e-3, atol=2e-3)")}
        if m in simple:
            return simple[m]()
        return self.row("not_measured", None, f"metric {m!r} is not one the toolkit evaluates")


def _tflops_by_shape(ok: pd.DataFrame, impl: str) -> dict[tuple, tuple[float, str]]:
    """(B, H, S, D, causal) -> (TFLOP/s, run_id) of `impl`'s ok timings, fp16 preferred where several dtypes."""
    out: dict[tuple, tuple[float, str, str]] = {}  # key -> (TFLOP/s, run_id, dtype)
    sub = ok[ok["impl"] == impl]
    for B, H, S, D, causal, dtype, tflops, rid in zip(sub["B"], sub["H"], sub["S"], sub["D"], sub["causal"],
                                                      sub["dtype"], sub["tflops"], sub["run_id"]):
        key = (int(B), int(H), int(S), int(D), bool(causal))
        if key not in out or dtype == "fp16":
            out[key] = (float(tflops), rid, dtype)
    return {k: v[:2] for k, v in out.items()}


# ---- all gates ----------------------------------------------------------------------------------------------
def evaluate_evidence(ev: Evidence, model=None) -> pd.DataFrame:
    """One row per gate of the model over the joined evidence (columns GATE_COLUMNS)."""
    model = _model(model)
    impls = {int(s.index): s.impl for s in model.stages}
    rows = [_Judge(ev, model, g, impls.get(int(g.stage))).evaluate() for g in model.gates]
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def evaluate_gates(run: Run, model=None) -> pd.DataFrame:
    """One row per gate of the model on one run: status (pass | fail | not_measured | report), the measured
    figure, the threshold, a one-line detail, the run it came from and, where not measured, the command that
    would measure it."""
    return evaluate_evidence(Evidence([run]), model)


def evaluate_gates_over(runs: list[Run], model=None) -> pd.DataFrame:
    """`evaluate_gates` over several runs of one GPU model joined (UserError for mixed GPUs)."""
    return evaluate_evidence(Evidence(runs), model)


def blocking(gates: pd.DataFrame, strict: bool = False) -> pd.DataFrame:
    """The gates that decide the exit status: required ones (stretch too when `strict`), none judged by a person."""
    kinds = ("required", "stretch") if strict else ("required",)
    return gates[gates["kind"].isin(kinds) & (gates["status"] != "report")]


def failed(gates: pd.DataFrame, include_stretch: bool = False) -> pd.DataFrame:
    """The gates that fail (required ones only unless `include_stretch`)."""
    b = blocking(gates, strict=include_stretch)
    return b[b["status"] == "fail"]


def not_measured(gates: pd.DataFrame, strict: bool = False) -> pd.DataFrame:
    b = blocking(gates, strict)
    return b[b["status"] == "not_measured"]


def exit_status(gates: pd.DataFrame, strict: bool = False, allow_missing: bool = False,
                problems: list[str] = ()) -> int:
    """0 every blocking gate passes; 1 one fails; 3 none fails but one is not measured (0 with `allow_missing`),
    or the evidence can never pass (`problems`, or no blocking gate measured at all), whatever `allow_missing`."""
    b = blocking(gates, strict)
    if (b["status"] == "fail").any():
        return EXIT_FAIL
    if problems or not b["status"].isin(("pass", "fail")).any():
        return EXIT_NOT_MEASURED
    if (b["status"] == "not_measured").any() and not allow_missing:
        return EXIT_NOT_MEASURED
    return EXIT_PASS
