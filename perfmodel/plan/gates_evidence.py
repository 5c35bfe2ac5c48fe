"""The evidence the gates read: one run, or several runs of one GPU model joined into one read-only view.

`Evidence(runs).table(name)` is the runs' tables concatenated. Every row keeps its `run_id`, so each figure a gate
shows says which run it came from. Where several runs measured the same case (impl, config_id) of a table, only
the newest run's rows are kept (by run.json `created`; runs created in the same second keep the order given),
and `superseded` says whose rows were dropped. A row whose status is `not_measured` or `unavailable` measured
nothing: it never hides an older run's measurement of the same case. `stalls` and `ncu_metrics` choose their run
per case together, since the stall shares are weighted by the kernel durations of the same Nsight Compute session.

Refused (`UserError`, exit status 2): runs measured on different GPU models (run.json `environment.gpu_name`)
and the same run given twice. `problems()` names what keeps these runs from ever passing the gates.
"""

from __future__ import annotations

import pandas as pd

from perfmodel.errors import UserError
from perfmodel.runs import Run, created, gpu_name
from runstore.schema import TABLES

NOTHING_MEASURED = ("not_measured", "unavailable")
_CHOSEN_TOGETHER = {"stalls": ("stalls", "ncu_metrics"), "ncu_metrics": ("stalls", "ncu_metrics")}
_CASE = ["impl", "config_id"]


class Evidence:
    """Several runs of one GPU model read as one: `table(name)` as `Run.table` does, newest run per case."""

    def __init__(self, runs: list[Run]):
        runs = list(runs)
        if not runs:
            raise UserError("no run was given to check the gates on.")
        ids = [r.run_id for r in runs]
        twice = next((i for i in ids if ids.count(i) > 1), None)
        if twice is not None:
            raise UserError(f"run {twice} is given twice; give each run once.")
        gpus = {r.run_id: gpu_name(r) or "no GPU" for r in runs}
        if len(set(gpus.values())) > 1:
            seen = ", ".join(f"{rid} on {gpu}" for rid, gpu in gpus.items())
            raise UserError(f"the runs were measured on different GPU models ({seen}); the gates join the evidence "
                            "of one GPU model only, so check each GPU's runs on their own.")
        self.runs: tuple[Run, ...] = tuple(sorted(runs, key=created))  # oldest first; a stable sort keeps ties
        self.gpu: str = next(iter(gpus.values()))
        self._tables: dict[str, pd.DataFrame] = {}
        self._chosen: dict[tuple[str, ...], pd.DataFrame] = {}
        self._missing: dict[str, list[str]] | None = None

    @property
    def run_id(self) -> str:
        return ", ".join(r.run_id for r in self.runs)

    def problems(self) -> list[str]:
        """One sentence per run that can never let the gates pass: an --interpret run, a run with no tables, a run
        that lacks a table it lists (runstore.reader.Run.missing_tables_problem)."""
        out = []
        for r in self.runs:
            if r.meta.get("mode") == "interpret":
                out.append(f"run {r.run_id} was made with --interpret: its kernels ran on the CPU interpreter, so "
                           "it holds no GPU timings, counters or determinism checks and cannot pass the plan's gates.")
            elif not r.tables():
                out.append(f"run {r.run_id} holds no tables (its tables/ folder is missing or empty), so it has no "
                           "evidence to pass a gate with.")
            elif any(r.run_id in ids for ids in self.missing_tables().values()):
                out.append(r.missing_tables_problem())
        return out

    def missing_tables(self) -> dict[str, list[str]]:
        """{table: run ids} of the tables a run lists and lacks (runstore.reader.Run.missing_tables)."""
        if self._missing is None:
            self._missing = {}
            for r in self.runs:
                for t in r.missing_tables():
                    self._missing.setdefault(t, []).append(r.run_id)
        return self._missing

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._tables:
            self._tables[name] = self._join(name)
        return self._tables[name].copy()

    def superseded(self, name: str, impl: str, config_ids) -> list[str]:
        """Run ids whose measurement of `impl` at any of `config_ids` in table `name` a newer run replaced."""
        if len(self.runs) == 1:  # no newer run to replace one
            return []
        chosen = self._choice(name)
        if chosen.empty:
            return []
        sub = chosen[(chosen["impl"] == impl) & chosen["config_id"].isin(list(config_ids))]
        return sorted({rid for ids in sub["replaced"] for rid in ids})

    def replaced_cases(self) -> int:
        """How many (table, impl, config) cases of the tables read so far more than one run measured."""
        return sum(int(c["replaced"].map(bool).sum()) for c in self._chosen.values() if not c.empty)

    # -- internals
    def _join(self, name: str) -> pd.DataFrame:
        frames = [r.table(name) for r in self.runs]
        if len(frames) == 1:
            return frames[0]
        filled = [f.assign(_rank=i) for i, f in enumerate(frames) if not f.empty]
        if not filled:
            return frames[0]
        df = pd.concat(filled, ignore_index=True) if len(filled) > 1 else filled[0]
        if TABLES[name]["case"] and len(filled) > 1:
            keep = self._choice(name)[[*_CASE, "rank"]]
            df = df.merge(keep, on=_CASE, how="left")
            df = df[df["_rank"] == df["rank"]].drop(columns="rank")
        return df.drop(columns="_rank").reset_index(drop=True)

    def _choice(self, name: str) -> pd.DataFrame:
        """Per case of table `name` (and the tables chosen with it): the run rank kept and the run ids replaced."""
        group = _CHOSEN_TOGETHER.get(name, (name,))
        if group not in self._chosen:
            marks = []
            for i, r in enumerate(self.runs):
                for t in group:
                    df = r.table(t)
                    if df.empty:
                        continue
                    status = df["status"] if "status" in df.columns else pd.Series(None, index=df.index)
                    measured = ~status.isin(NOTHING_MEASURED)
                    marks.append(pd.DataFrame({"impl": df["impl"], "config_id": df["config_id"], "rank": i,
                                               "measured": measured.to_numpy()}))
            if not marks:
                self._chosen[group] = pd.DataFrame(columns=[*_CASE, "rank", "replaced"])
            else:
                m = pd.concat(marks, ignore_index=True).groupby([*_CASE, "rank"], dropna=False, as_index=False)[
                    "measured"].any()
                rows = []
                for (impl, config_id), g in m.groupby(_CASE, dropna=False, sort=False):
                    did = g[g["measured"]]["rank"].tolist()
                    rank = max(did) if did else int(g["rank"].max())
                    rows.append({"impl": impl, "config_id": config_id, "rank": rank,
                                 "replaced": [self.runs[k].run_id for k in did if k != rank]})
                self._chosen[group] = pd.DataFrame(rows, columns=[*_CASE, "rank", "replaced"])
        return self._chosen[group]
