"""Stall reasons per partition: Nsight Compute's per-instruction warp sampling, read through NVIDIA's `ncu_report`
and mapped to the partition and the place in the kernel that each sampled instruction belongs to (issue 24, item 4).

What `ncu_report` gives of one profiled kernel (an IAction; checked on the committed tests/data/h200 report):

- every executed SASS instruction: the instanced metric `inst_executed` has one instance per instruction, whose
  correlation id is the instruction's absolute address (PC); `sass_by_pc(pc)` its SASS text (branches name their
  target as an absolute address, `@!P2 BRA 0x7f7d577a5550`), `source_info(pc)` its source file and line (Triton
  compiles with line info, so a Gluon kernel's SASS maps to the lines of kernels/*.py);
- the warp sampler's stall reasons per instruction: instanced metrics `smsp__pcsamp_warps_issue_stalled_<reason>`
  (and `..._not_issued`), one instance per sampled PC, when the report was collected with Nsight Compute's
  SourceCounters section (`--section SourceCounters`; this project's collect profiles WarpStateStats, the
  kernel-wide stall shares, and not these yet: `stall_samples` then returns no rows);
- `timed_warp_samples()` (pc, stall reason, timestamp), which carries no warp id either.

No sample says which warp it came from, so the partition is found from the instruction: a warp-specialized kernel
runs each partition's own code (`gl.warp_specialize` compiles every partition function into its own region), so an
instruction's source line names the partition function it came from (`partition_lines`: the functions each
partition calls, transitively, read from the stage's source with `ast`), and
- a line of a function only the producer reaches is the producer's; one that only consumers reach, the consumers'
  (consumer partitions run one function, so their samples are pooled: telling consumer 0's copy of the code from
  consumer 1's needs the address ranges of the partition regions, which the SASS does not mark);
- a line of the `gl.warp_specialize(...)` call itself is `idle`: the warps waiting there are the padding warps of
  the last warp group and the partitions that finished, parked until the kernel ends (Triton's dispatch loop and
  exit barrier carry the call's location); other lines of the kernel function are `setup`;
- an instruction without a line of the stage (Triton's own helpers, e.g. cdiv) takes the role of the nearest
  preceding instruction that has one (the compiler inlines a helper where its caller is).

Where in the kernel: an instruction is `in_loop` when it lies inside a key loop: a loop of the SASS (a backward
branch and its target) that issues wgmma (HGMMA) or TMA loads (UTMALDG) and contains no smaller such loop (the
mbarrier spin loops inside it are part of it; a persistent kernel's loop over work items is not a key loop).

`stalls_by_partition` then sums the samples per (role, place, reason): the in-loop shares are the ones the Amdahl
bounds should use, and `idle` separates the parked warps (stage 5's "barrier" stalls) from the loop's own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pandas as pd

STALL_PREFIX = "smsp__pcsamp_warps_issue_stalled_"
NOT_ISSUED = "_not_issued"
IDLE, SETUP, OTHER = "idle", "setup", "other"
_BRANCH = re.compile(r"\bBRA(?:\.\S+)?\s+(0x[0-9a-fA-F]+)")
_KEY_LOOP_OPS = ("HGMMA", "UTMALDG")


# ---- what the report holds -------------------------------------------------------------------------------------
def _instances(metric) -> tuple[list[int], list[float]]:
    ids = metric.correlation_ids()
    n = metric.num_instances()
    return [int(ids.as_uint64(i)) for i in range(n)], [float(metric.as_double(i)) for i in range(n)]


def sass_listing(action) -> pd.DataFrame:
    """Every executed instruction of an ncu_report action: pc, offset (from the first), sass, file, line,
    executed (warp-level instructions executed), in address order."""
    metric = action.metric_by_name("inst_executed")
    if metric is None or not metric.has_correlation_ids():
        return pd.DataFrame(columns=["pc", "offset", "sass", "file", "line", "executed"])
    pcs, executed = _instances(metric)
    rows = []
    for pc, n in zip(pcs, executed):
        info = action.source_info(pc)
        rows.append((pc, action.sass_by_pc(pc).strip(), info.file_name() if info else "",
                     int(info.line()) if info else 0, n))
    out = pd.DataFrame(rows, columns=["pc", "sass", "file", "line", "executed"]).sort_values("pc", kind="stable")
    out.insert(1, "offset", out["pc"] - out["pc"].min())
    return out.reset_index(drop=True)


def stall_samples(action) -> pd.DataFrame:
    """The warp sampler's stall samples per instruction: pc, reason, samples (every sample), not_issued (samples in
    which no warp issued). No rows when the report was collected without per-instruction sampling."""
    names = [n for n in action.metric_names() if n.startswith(STALL_PREFIX) and not n.endswith(NOT_ISSUED)]
    frames = []
    for name in names:
        metric = action.metric_by_name(name)
        if metric is None or not metric.has_correlation_ids():
            continue
        pcs, values = _instances(metric)
        quiet = action.metric_by_name(name + NOT_ISSUED)
        idle = dict(zip(*_instances(quiet))) if quiet is not None and quiet.has_correlation_ids() else {}
        frames.append(pd.DataFrame({"pc": pcs, "reason": name[len(STALL_PREFIX):], "samples": values,
                                    "not_issued": [idle.get(pc, np.nan) for pc in pcs]}))
    if not frames:
        return pd.DataFrame(columns=["pc", "reason", "samples", "not_issued"])
    out = pd.concat(frames, ignore_index=True)
    return out[out["samples"] > 0].reset_index(drop=True)


# ---- where each instruction is ---------------------------------------------------------------------------------
def sass_loops(listing: pd.DataFrame) -> pd.DataFrame:
    """The loops of a listing: first_pc (a backward branch's target), last_pc (the branch), key (it issues wgmma or
    TMA loads and holds no smaller loop that does: a key loop)."""
    loops = []
    for pc, text in zip(listing["pc"], listing["sass"]):
        m = _BRANCH.search(text)
        if m and int(m.group(1), 16) <= pc:
            loops.append((int(m.group(1), 16), int(pc)))
    frame = pd.DataFrame(loops, columns=["first_pc", "last_pc"]).drop_duplicates()
    pcs = listing["pc"].to_numpy()
    heavy = listing["sass"].str.contains("|".join(_KEY_LOOP_OPS), regex=True).to_numpy()
    issues = [bool(heavy[(pcs >= a) & (pcs <= b)].any()) for a, b in zip(frame["first_pc"], frame["last_pc"])]
    frame["issues"] = issues
    inner = []
    for i, (a, b, w) in enumerate(zip(frame["first_pc"], frame["last_pc"], issues)):
        holds = any(j != i and w2 and a <= a2 and b2 <= b and (a2, b2) != (a, b)
                    for j, (a2, b2, w2) in enumerate(zip(frame["first_pc"], frame["last_pc"], issues)))
        inner.append(bool(w and not holds))
    frame["key"] = inner
    return frame.drop(columns="issues").sort_values("first_pc").reset_index(drop=True)


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _imports(path: Path) -> dict[str, Path]:
    """name -> the sibling module file it is imported from (`from ._gluon import x`, `from .stage4 import y`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            target = path.parent / f"{node.module}.py"
            if target.is_file():
                out.update({a.asname or a.name: target for a in node.names})
    return out


def _called(fn: ast.FunctionDef) -> set[str]:
    return {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _partition_functions(kernel: ast.FunctionDef) -> tuple[list[str], list[ast.Call]]:
    """The partition functions a kernel's `gl.warp_specialize([(fn, args), ...], ...)` calls name, in order, and
    the calls."""
    calls = [n for n in ast.walk(kernel) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "warp_specialize"]
    names = []
    for call in calls:
        if call.args and isinstance(call.args[0], ast.List):
            for elt in call.args[0].elts:
                if isinstance(elt, ast.Tuple) and elt.elts and isinstance(elt.elts[0], ast.Name):
                    names.append(elt.elts[0].id)
    return list(dict.fromkeys(names)), calls


def role_of(function: str) -> str:
    """A partition's role from its function's name: `_producer` -> producer, `_load_partition` -> load."""
    return function.strip("_").removesuffix("_partition")


def partition_lines(module_file: str | Path, kernel: str = "_attn_fwd") -> pd.DataFrame:
    """The source lines of a Gluon kernel module and the roles that run them: file, line, role (one of the
    partitions' roles, IDLE for the lines of the warp_specialize call, SETUP for the kernel's other lines; a line
    that several roles reach, e.g. a shared helper, has one row per role)."""
    path = Path(module_file).resolve()
    functions = {(path, name): fn for name, fn in _functions(path).items()}
    kfn = functions.get((path, kernel))
    if kfn is None:
        raise ValueError(f"{path.name} defines no kernel function {kernel!r}.")
    partitions, calls = _partition_functions(kfn)
    imported = _imports(path)
    rows = []
    for name in partitions:
        role = role_of(name)
        todo, seen = [(imported.get(name, path) if (path, name) not in functions else path, name)], set()
        while todo:
            where, fname = todo.pop()
            if (where, fname) in seen:
                continue
            seen.add((where, fname))
            if (where, fname) not in functions:
                functions.update({(where, n): f for n, f in _functions(where).items()})
            fn = functions.get((where, fname))
            if fn is None:
                continue
            rows += [(str(where), line, role) for line in range(fn.lineno, fn.end_lineno + 1)]
            imports = _imports(where)
            for callee in _called(fn):
                if (where, callee) in functions or callee in _functions(where):
                    todo.append((where, callee))
                elif callee in imports:
                    todo.append((imports[callee], callee))
    ws_lines = {line for call in calls for line in range(call.lineno, call.end_lineno + 1)}
    rows += [(str(path), line, IDLE if line in ws_lines else SETUP)
             for line in range(kfn.lineno, kfn.end_lineno + 1)]
    return pd.DataFrame(rows, columns=["file", "line", "role"]).drop_duplicates().reset_index(drop=True)


def instruction_places(listing: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """The listing with each instruction's role and place: role from its source line (`partition_lines`; several
    roles on one line: joined with '+'; none: the nearest preceding instruction's, else OTHER) and in_loop (inside
    a key loop, `sass_loops`)."""
    roles = (lines.assign(file=lines["file"].map(lambda f: Path(f).name))
             .groupby(["file", "line"])["role"].agg(lambda r: "+".join(sorted(set(r)))))
    key = zip(listing["file"].map(lambda f: Path(f).name if f else ""), listing["line"])
    role = pd.Series([roles.get(k) for k in key], index=listing.index, dtype=object).ffill().fillna(OTHER)
    loops = sass_loops(listing)
    key_loops = loops[loops["key"]]
    pcs = listing["pc"].to_numpy()
    inside = np.zeros(len(pcs), dtype=bool)
    for a, b in zip(key_loops["first_pc"], key_loops["last_pc"]):
        inside |= (pcs >= a) & (pcs <= b)
    return listing.assign(role=role.to_numpy(), in_loop=inside)


def stalls_by_partition(samples: pd.DataFrame, places: pd.DataFrame) -> pd.DataFrame:
    """Stall samples summed per (role, place, reason), place = in_loop | outside_loop (IDLE and SETUP roles are
    their own place); fraction = share of all the kernel's samples. Samples at a PC the listing lacks count as
    role OTHER."""
    merged = samples.merge(places[["pc", "role", "in_loop"]], on="pc", how="left")
    merged["role"] = merged["role"].fillna(OTHER)
    merged["place"] = np.where(merged["role"].isin([IDLE, SETUP]), merged["role"],
                               np.where(merged["in_loop"].fillna(False).astype(bool), "in_loop", "outside_loop"))
    out = merged.groupby(["role", "place", "reason"], as_index=False)["samples"].sum()
    total = out["samples"].sum()
    out["fraction"] = out["samples"] / total if total > 0 else np.nan
    return out.sort_values(["role", "place", "samples"], ascending=[True, True, False]).reset_index(drop=True)
