"""The ablation phase of `perfmodel collect`: each technique switch of the implementations that declare some,
measured alone (collectors/sweep/ablation.py), one (implementation, config) at a time after the cases, and the variants
each gain compares for the Nsight Compute session."""

from __future__ import annotations

from collectors.sweep.census_phase import tuned_configs
from kernels.workload import AttentionConfig
from runstore.reader import load_run


def ablation_todo(writer, impls, configs) -> list[tuple[str, AttentionConfig]]:
    """(impl, config) pairs of implementations that declare technique switches and have no ablation rows yet."""
    df = load_run(writer.path).table("ablation")
    done = set(zip(df["impl"].astype(str), df["config_id"].astype(str))) if not df.empty else set()
    names = [i.name for i in impls if i.switches()]
    return [(n, c) for c in configs for n in names if (n, c.id) not in done]


def run_ablation(opts, writer, todo, steps) -> None:
    """Each technique switch measured alone, one (stage, config) of `todo` at a time; a case that was not
    correct (or could not run here) gets rows that say why its variants were not run."""
    if not todo:
        return
    from collectors.sweep import ablation as A
    from kernels import lookup

    run = load_run(writer.path)
    c = run.table("correctness")
    correct = set(zip(c.loc[c["status"] == "ok", "impl"].astype(str), c.loc[c["status"] == "ok", "config_id"]))
    tuned = tuned_configs(run)
    declared = dict(writer.meta.get("ablation") or {})
    for impl, cfg in todo:
        steps.step(f"ablation {impl} {cfg.id}")
        stage = lookup.get(impl)
        declared[impl] = A.declared(stage)
        tuned_cfg = stage.config_from_report(tuned.get((impl, cfg.id)))
        if (impl, cfg.id) not in correct:
            variants, timed = [], False
            status = c.loc[(c["impl"].astype(str) == impl) & (c["config_id"] == cfg.id), "status"]
            if (status == "not_measured").any():
                why = ("the case itself could not run here (e.g. a Gluon kernel under --interpret), so its "
                       "variants were not run (see the correctness table)")
            else:
                why = "the case itself was not correct, so its variants were not run (see the correctness table)"
        else:
            variants = A.plan_variants(stage, cfg, tuned_cfg)
            if opts.interpret:
                A.check_in_interpreter(stage, cfg, variants, writer.path / "interpret", opts.seed)
                timed, why = False, "--interpret runs on the CPU; there is no GPU to time"
            else:
                A.measure_on_gpu(stage, cfg, variants, warmup_ms=opts.warmup_ms, rep_ms=opts.rep_ms,
                                 seed=opts.seed)
                timed, why = True, ""
        writer.append("ablation_variants", A.variant_rows(stage, cfg, variants, tuned_cfg))
        writer.append("timing_samples", A.sample_rows(stage, cfg, variants))
        writer.append("ablation", A.gain_rows(stage, cfg, variants, tuned_cfg, timed, why))
    writer.update_meta(ablation=declared)


def ablation_ncu_cases(writer, configs) -> list[dict]:
    """The ablation variants each measured gain compares, for the Nsight Compute session (under their label)."""
    from collectors.sweep import ablation as A

    run = load_run(writer.path)
    return A.ncu_cases(run.table("ablation"), run.table("ablation_variants"), {c.id: c for c in configs})
