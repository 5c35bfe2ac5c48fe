"""One gate judged on the evidence of the runs (`GateJudge`): pass, fail, not measured (with the reason and the
command that measures it) or report, from the tables the gate's metric names; the rules are perfmodel/plan/
gates.py's docstring.
"""

from __future__ import annotations

import math
import statistics

import pandas as pd

from perfmodel.plan.einstein import DETERMINISM_METRIC, PEER_RATIO_PREFIX, TFLOPS_METRIC, Gate
from perfmodel.plan.gates_evidence import NOTHING_MEASURED, Evidence
from perfmodel.reports.analysis import config_of
from perfmodel.reports.limits import stall_table
from perfmodel.reports.timing_view import method_phrase

from perfmodel.plan.gate_reading import (_LOWER_IS_BETTER, configs_needed, judge, measure_command, rows_for,
                                         same_shape, scope, scope_text, threshold_text)


# ---- one gate -----------------------------------------------------------------------------------------------
class GateJudge:
    """Evaluates one gate over the evidence; `row` builds its result line."""

    def __init__(self, ev: Evidence, model, gate: Gate, impl: str | None):
        self.ev, self.model, self.g, self.impl = ev, model, gate, impl
        self.configs, self.need = scope(gate), configs_needed(gate)
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
        if table == "timings" and self.impl and runs:  # say which timing method gave the figure
            cited = [r for r in self.ev.runs if r.run_id in runs]
            how = method_phrase(cited, {self.impl, *self.g.peers}, {c.id for c in self.configs})
            detail += f" ({how})" if how else ""
        return {"gate": g.id, "stage": g.stage, "impl": self.impl, "kind": g.kind, "status": status,
                "measured": measured if measured is not None else float("nan"), "threshold": threshold_text(g),
                "detail": detail, "quote": g.quote, "configs": scope_text(g), "run": ", ".join(runs),
                "command": measure_command(g) if status == "not_measured" else ""}

    def rows_of(self, table: str) -> pd.DataFrame:
        df = self.table(table)
        return rows_for(df[df["impl"] == self.impl], self.configs)

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
            return self.row("not_measured", None, f"the runs have no {self.impl} case on {scope_text(self.g)} that ran")
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
                            f"{scope_text(self.g)}{why}")
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
                           f"{scope_text(self.g)}{why}", "correctness")

    def tflops(self) -> dict:
        t, b = self.table("timings"), self.table("batching")
        t = t[(t["impl"] == self.impl) & (t["status"] == "ok")]
        b = b[b["impl"] == self.impl]
        found = []
        for cfg in self.configs:
            sub = same_shape(t, cfg)
            if not sub.empty:
                found.append((str(sub["config_id"].iloc[0]), float(sub["tflops"].iloc[0]), sub["run_id"].iloc[0]))
                continue
            sub = same_shape(b, cfg)
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
        one = self.ev.runs[0] if len(self.ev.runs) == 1 else None  # its stall table: the report's, computed once
        s = stall_table(one or self.ev, self.model)
        s = s[(s["impl"] == self.impl) & (s["reason"] == reason)]
        found = []
        for cfg in self.configs:
            sub = same_shape(s, cfg)
            if not sub.empty:
                found.append((str(sub["config_id"].iloc[0]), float(sub["fraction"].sum()), sub["run_id"].iloc[0]))
        return self.values(found, f"{reason} share of stall cycles", f"no stall counters for {self.impl} at "
                           f"{scope_text(self.g)} (ncu did not run, or was not allowed)", "stalls")

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
            return self.row("not_measured", None, f"no config of {scope_text(self.g)} has both {self.impl} and "
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
