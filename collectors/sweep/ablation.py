"""The ablation phase of `perfmodel collect`: what each technique switch of a kernel is worth, measured alone.

An implementation that declares technique switches (`kernels.Switch`: a stage module's `SWITCHES`, or a user
function's `switches` attribute, kernels.FunctionSwitches) is run, per config, at every kernel config its tuner
may choose (`Impl.variants`: the tuner's candidates; for a user function every on/off combination of its
switches) and at the one-switch flips of the config the sweep timed (`Impl.pinned` runs each one). Every variant is checked against the float64 reference like any case
(collectors.timing.bench.check_output): a wrong, refused or failing variant gets no time, and the reason is kept. The
correct ones are timed with the case settings (rotated inputs, the same warm-up and repetition times), not the
tuner's short timings. Then, per switch:

- `best`: the fastest correct variant with the technique on against the fastest with it off, over the same
  candidate set (what the technique is worth when everything else may be re-tuned around it);
- `flip`: the config the sweep timed against the same config with only that switch flipped (what it is worth
  at the tuned point, all else equal); a flip that cannot change the kernel (`Switch.requires` unmet) is
  `no_effect`, never timed as if it were a different kernel.

Gain = t_off / t_on − 1 (+0.15: the technique makes the kernel 15% faster), with a bootstrap 95% interval from
both variants' samples (collectors.timing.stats.ratio_gain_ci). Rows go to the `ablation_variants` and `ablation`
tables (runstore/schema.py), one part per (stage, config), so a resumed run redoes only the configs whose
`ablation` rows are missing; the timed variants' samples go to `timing_samples` under the variant's label
`<stage>#<variant id>`, the name the Nsight Compute session profiles them under (`ncu_cases`).

Under `--interpret` the variants' correctness is checked in the CPU interpreter process (collectors.sweep.worker
--check, with the variant pinned) and every time is `not_measured`.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kernels.workload import AttentionConfig
from runstore.schema import case_key as _key

MEASURES = ("best", "flip")


def _number(value) -> float:
    """A figure read back from the interpreter's JSON line: a float, NaN where it is missing."""
    return math.nan if value is None else float(value)


def variant_id(impl: str, kernel_config) -> str:
    """A short stable id of one kernel config of `impl` (the same in every run and process)."""
    return hashlib.sha1(f"{impl}|{kernel_config}".encode()).hexdigest()[:8]


def variant_label(impl: str, vid: str) -> str:
    """The name a variant's rows carry as `impl` in timing_samples, ncu_metrics and stalls."""
    return f"{impl}#{vid}"


@dataclass
class Variant:
    """One kernel config of an ablation and what was measured of it."""

    config: object  # the kernel's own config (kernels.stage5_full.Config, a FunctionSwitches.Config)
    role: str  # "candidate" (the tuner's set) | "flip" (a one-switch flip of the timed config, outside the set)
    status: str = "not_measured"  # ok | wrong | failed | not_measured
    error: str = ""
    correctness: object = None  # collectors.timing.bench.Correctness
    timing: object = None  # collectors.timing.measure.Timing: the GPU's time (CUDA graph), else the host loop's
    graph_fallback: str | None = None  # why the variant was not timed by CUDA graph

    def time_ms(self) -> float:
        return self.timing.median_ms if self.timing is not None else math.nan


def plan_variants(stage, config: AttentionConfig, tuned) -> list[Variant]:
    """The tuner's candidates, plus each switch's flip of `tuned` (the config the sweep timed) not among them."""
    variants = [Variant(c, "candidate") for c in dict.fromkeys(stage.variants(config))]
    have = {str(v.config) for v in variants}
    if tuned is not None:
        if str(tuned) not in have:
            variants.append(Variant(tuned, "flip"))
            have.add(str(tuned))
        for sw in stage.switches():
            flipped = sw.flipped(tuned)
            if sw.no_effect(tuned) is None and str(flipped) not in have:
                variants.append(Variant(flipped, "flip"))
                have.add(str(flipped))
    return variants


# ---- measuring on the GPU ---------------------------------------------------------------------------------------
def measure_on_gpu(stage, config: AttentionConfig, variants: list[Variant], *, warmup_ms: float, rep_ms: float,
                   seed: int = 0, on_variant=None) -> None:
    """Check every variant against the reference, then time the correct ones like a case (fills each Variant)."""
    import torch

    from collectors.timing.bench import check_output, make_input_sets
    from collectors.timing.failures import one_line, output_problem
    from collectors.timing.measure import inputs_for_rotation, l2_bytes, time_gpu

    n_sets = inputs_for_rotation(config, l2_bytes())
    sets = make_input_sets(config, n_sets, seed=seed)
    q, k, v = sets[0]
    causal = config.causal
    for i, var in enumerate(variants):
        if on_variant is not None:
            on_variant(i, len(variants), var)
        try:
            with stage.pinned(str(var.config)):
                out = stage.launcher(q, k, v, causal=causal)
                torch.cuda.synchronize()
                problem = output_problem(stage.name, out, q)  # None, a tuple, another shape or dtype
                if problem:
                    var.status, var.error = "failed", problem
                    continue
                var.correctness = check_output(out, q, k, v, causal)
                del out
                if not var.correctness.within_budget:
                    var.status = "wrong"
                    var.error = (f"max abs error {var.correctness.max_abs_err:.3g} exceeds the budget "
                                 f"{var.correctness.budget_abs_err:.3g}; not timed")
                    continue
                var.timing, var.graph_fallback = time_gpu(lambda j: stage.launcher(*sets[j], causal=causal),
                                                          n_sets, warmup_ms, rep_ms)
                var.status = "ok"
        except Exception as exc:  # a refused or failing variant is recorded; the others still run
            var.status, var.error = "failed", one_line(exc)
        torch.cuda.empty_cache()


# ---- checking under the interpreter -----------------------------------------------------------------------------
def check_in_interpreter(stage, config: AttentionConfig, variants: list[Variant], work_dir: Path,
                         seed: int = 0) -> None:
    """Correctness of every variant in a TRITON_INTERPRET=1 child process (collectors.sweep.worker --check), or in this
    process for a function only it can run (collectors.sweep.worker.check_here)."""
    from collectors.sweep.worker import check_here
    from collectors.timing.bench import Correctness
    from kernels.reference import ROUNDED_FIGURES

    cases = [{"impl": stage.name, "config": config.as_dict(), "range": str(i), "tuned_config": str(v.config)}
             for i, v in enumerate(variants)]
    if stage.in_process_only:
        rows, exit_status = {i: check_here(case, seed) for i, case in enumerate(cases)}, None
    else:
        rows, exit_status = _check_in_child(cases, Path(work_dir).resolve(), f"ablation-{stage.name}-{config.id}",
                                            seed)
    for i, var in enumerate(variants):
        row = rows.get(i)
        if row is None:
            var.status = "failed"
            var.error = f"the interpreter process stopped before this variant (exit status {exit_status})"
            continue
        var.status = "ok" if row["status"] == "ok" else row["status"]
        var.error = row.get("error") or ""
        if math.isfinite(row.get("max_abs_err") or math.nan):
            var.correctness = Correctness(
                max_abs_err=row["max_abs_err"], max_rel_err=row["max_rel_err"], rel_l2_err=row["rel_l2_err"],
                budget_abs_err=row["budget_abs_err"], finite=True, doc_allclose=bool(row["doc_allclose"]),
                **{col: _number(row.get(col)) for col in ROUNDED_FIGURES})


def _check_in_child(cases: list[dict], work_dir: Path, tag: str, seed: int) -> tuple[dict[int, dict], int]:
    """({variant index: its correctness line}, exit status) of the `--check` child run over `cases`."""
    from collectors.ncu.profile import write_cases_file
    from collectors.sweep.worker import check_command

    work_dir.mkdir(parents=True, exist_ok=True)
    cases_file = write_cases_file(work_dir / f"{tag}.json", cases, seed)
    report = work_dir / f"{tag}.jsonl"
    report.write_text("")
    argv, env, root = check_command(cases_file, report)
    with open(work_dir / f"{tag}.log", "w") as log:
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    rows = {}
    for line in report.read_text().splitlines():
        row = json.loads(line)
        rows[int(row["range"])] = row
    return rows, proc.returncode


# ---- rows -------------------------------------------------------------------------------------------------------
def variant_rows(stage, config: AttentionConfig, variants: list[Variant], tuned) -> list[dict]:
    """Rows of the `ablation_variants` table."""
    from kernels.reference import ROUNDED_FIGURES

    rows = []
    for var in variants:
        c, t = var.correctness, var.timing
        vid = variant_id(stage.name, var.config)
        row = {**_key(stage.name, config), "variant_id": vid, "label": variant_label(stage.name, vid),
               "variant": str(var.config), "role": var.role, "tuned": tuned is not None and str(var.config) == str(tuned),
               "status": var.status, "error": var.error or None,
               "max_abs_err": c.max_abs_err if c else math.nan, "budget_abs_err": c.budget_abs_err if c else math.nan,
               "within_budget": c.within_budget if c else None,
               **{col: getattr(c, col) if c else math.nan for col in ROUNDED_FIGURES}}
        for sw in stage.switches():  # one column per switch; a user's switch never hides a documented column
            row.setdefault(sw.name, bool(sw.is_on(var.config)))
        if t is not None:
            row.update(t.as_dict(), timing_method=t.method, graph_fallback=var.graph_fallback)
            row["tflops"] = config.tflops_at(t.median_ms)
        rows.append(row)
    return rows


def sample_rows(stage, config: AttentionConfig, variants: list[Variant]) -> list[dict]:
    """Every timed sample of every timed variant, for `timing_samples` under the variant's label."""
    rows = []
    for var in variants:
        if var.timing is None:
            continue
        label = variant_label(stage.name, variant_id(stage.name, var.config))
        rows += [{**_key(label, config), "sample_index": i, "time_ms": float(s)}
                 for i, s in enumerate(var.timing.samples_ms)]
    return rows


def _side_text(side: list[Variant], switch, value) -> str:
    if not side:
        return f"no candidate has {switch.name}={value}"
    bad = [v for v in side if v.status != "ok"]
    return (f"none of the {len(side)} candidates with {switch.name}={value} is correct and timed "
            f"({', '.join(sorted({v.status for v in bad}))}: {bad[0].error[:160]})")


def _gain(stage, config, switch, measure: str, on: Variant | None, off: Variant | None, status: str,
          error: str, n_on: int | None = None, n_off: int | None = None) -> dict:
    from collectors.timing.stats import ratio_gain_ci

    row = {**_key(stage.name, config), "switch": switch.name, "measure": measure,
           "constraints": ",".join(str(c) for c in switch.removes), "technique": switch.technique,
           "status": status, "error": error or None, "n_on": n_on, "n_off": n_off,
           "gain": math.nan, "gain_ci_low": math.nan, "gain_ci_high": math.nan}
    for side, var in (("on", on), ("off", off)):
        row[f"{side}_variant"] = str(var.config) if var is not None else None
        row[f"{side}_variant_id"] = variant_id(stage.name, var.config) if var is not None else None
        row[f"{side}_time_ms"] = var.time_ms() if var is not None else math.nan
    if status == "ok":
        row["gain"], row["gain_ci_low"], row["gain_ci_high"] = ratio_gain_ci(off.timing.samples_ms,
                                                                            on.timing.samples_ms)
    return row


def gain_rows(stage, config: AttentionConfig, variants: list[Variant], tuned, timed: bool,
              why_not_timed: str = "") -> list[dict]:
    """Rows of the `ablation` table: per switch, the best-with vs best-without gain and the flip gain."""
    rows = []
    by_text = {str(v.config): v for v in variants}
    candidates = [v for v in variants if v.role == "candidate"]
    for sw in stage.switches():
        on_side = [v for v in candidates if sw.is_on(v.config)]
        off_side = [v for v in candidates if not sw.is_on(v.config)]
        ok_on = [v for v in on_side if v.status == "ok" and v.timing is not None]
        ok_off = [v for v in off_side if v.status == "ok" and v.timing is not None]
        n_on = sum(v.status == "ok" for v in on_side)
        n_off = sum(v.status == "ok" for v in off_side)
        best_on = min(ok_on, key=Variant.time_ms) if ok_on else None
        best_off = min(ok_off, key=Variant.time_ms) if ok_off else None
        if not timed:
            status, error = "not_measured", why_not_timed
        elif best_on is None or best_off is None:
            status = "not_measured"
            error = _side_text(on_side, sw, sw.on) if best_on is None else _side_text(off_side, sw, sw.off)
        else:
            status, error = "ok", ""
        rows.append(_gain(stage, config, sw, "best", best_on, best_off, status, error, n_on, n_off))
        # the flip at the timed config
        if tuned is None:
            rows.append(_gain(stage, config, sw, "flip", None, None, "not_measured",
                              why_not_timed or "the sweep recorded no tuned config for this case"))
            continue
        if (why := sw.no_effect(tuned)) is not None:
            rows.append(_gain(stage, config, sw, "flip", None, None, "no_effect", why))
            continue
        here, there = by_text.get(str(tuned)), by_text.get(str(sw.flipped(tuned)))
        on, off = (here, there) if sw.is_on(tuned) else (there, here)
        if not timed:
            status, error = "not_measured", why_not_timed
        elif any(v is None or v.status != "ok" or v.timing is None for v in (on, off)):
            bad = next(v for v in (on, off) if v is None or v.status != "ok" or v.timing is None)
            status = "not_measured"
            error = f"variant {bad.config if bad else '?'} is {bad.status if bad else 'missing'}: " \
                    f"{(bad.error if bad else '')[:200]}"
        else:
            status, error = "ok", ""
        rows.append(_gain(stage, config, sw, "flip", on, off, status, error))
    return rows


def declared(stage) -> dict:
    """What run.json records of an implementation's switches (so analyses need not import the kernel)."""
    return {"switches": [{"name": s.name, "on": s.on, "off": s.off, "removes": list(s.removes),
                          "technique": s.technique} for s in stage.switches()],
            "not_ablatable": {str(k): v for k, v in stage.not_ablatable().items()}}


def ncu_cases(ablation_table, variants_table, configs: dict[str, AttentionConfig]) -> list[dict]:
    """The Nsight Compute session's extra cases: each variant a measured gain compares (both sides of every `ok`
    row of `ablation`), once, under its label, pinned to its kernel config."""
    if ablation_table is None or ablation_table.empty or variants_table is None or variants_table.empty:
        return []
    ok = ablation_table[ablation_table["status"] == "ok"]
    wanted = {(str(r.impl), str(r.config_id), str(vid)) for r in ok.itertuples()
              for vid in (r.on_variant_id, r.off_variant_id) if vid}
    out, seen = [], set()
    for r in variants_table.itertuples():
        key = (str(r.impl), str(r.config_id), str(r.variant_id))
        if key in wanted and key not in seen and r.status == "ok" and str(r.config_id) in configs:
            seen.add(key)
            out.append({"impl": str(r.impl), "label": str(r.label), "config": configs[str(r.config_id)],
                        "tuned_config": str(r.variant)})
    return out
