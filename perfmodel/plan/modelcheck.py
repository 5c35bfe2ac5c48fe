"""Hold an Einstein model to itself, to physics and to published figures: a list of findings.

Kinds of finding:
- internal: the model against its own numbers (stage-to-stage target ratios against the gains of the constraints
  each stage removes; the whole ladder against the product of all claimed gains; the vs-FA3 column against
  target / reference; the batching and launch claims against each other and against the reference);
- physics: the model against `perfmodel.model.bound` for a config and GPU (targets above the roofline; a
  "memory-bound" claim for a compute-bound config; the batching gate against what tiles, waves and one launch
  allow);
- evidence: the model against published and measured figures (`perfmodel/data/anchors.toml`, each cited).

Severity: `error` where the numbers disagree by more than `SEVERE` (a factor of 1.25) beyond the range the model
itself allows, `warning` where they disagree by less, `info` where they agree or for context. The factor only
sorts findings for a reader; it changes no number. Findings are the product of `perfmodel model check`, not
failures.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from kernels import suites
from kernels.hardware import GpuSpec, get_gpu
from kernels.workload import AttentionConfig, parse_config
from perfmodel.model.bound import predict_all, predict_stage, roofline_tflops
from perfmodel.plan.einstein import TFLOPS_METRIC, EinsteinModel

SEVERE = 1.25
RATIO_TOL = 0.02  # the document rounds its vs-FA3 column to two digits
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    kind: str  # internal | physics | evidence
    subject: str
    message: str


def load_anchors(path: str | Path | None = None) -> dict:
    p = Path(path) if path else Path(str(resources.files("perfmodel") / "data" / "anchors.toml"))
    with open(p, "rb") as f:
        return tomllib.load(f)


def _band(lo: float, hi: float, fmt: str = "{:.2f}") -> str:
    return fmt.format(lo) if math.isclose(lo, hi) else f"{fmt.format(lo)}-{fmt.format(hi)}"


def _severity(got_lo: float, got_hi: float, want_lo: float, want_hi: float) -> str:
    """Compare two ranges of ratios: info if they overlap, error if apart by more than SEVERE."""
    if got_hi >= want_lo and got_lo <= want_hi:
        return "info"
    if got_lo > want_hi * SEVERE or got_hi < want_lo / SEVERE:
        return "error"
    return "warning"


def _claimed(model: EinsteinModel, ids) -> tuple[float, float]:
    lo = hi = 1.0
    for cid in ids:
        c = model.constraint(cid)
        lo *= 1 + c.gain_low
        hi *= 1 + c.gain_high
    return lo, hi


def _ids_text(model: EinsteinModel, ids) -> str:
    if not ids:
        return "no constraint"
    return ", ".join(f"#{i} {model.constraint(i).key}" for i in ids)


def _internal(model: EinsteinModel) -> list[Finding]:
    out: list[Finding] = []
    targeted = [s for s in model.stages if s.target_low_tflops is not None]
    # stage-to-stage: each targeted stage against the previous targeted stage
    for prev, cur in zip(targeted, targeted[1:]):
        new_ids = [i for i in model.removed_through(cur.index) if i not in model.removed_through(prev.index)]
        got_lo = cur.target_low_tflops / prev.target_high_tflops
        got_hi = cur.target_high_tflops / prev.target_low_tflops
        want_lo, want_hi = _claimed(model, new_ids)
        sev = _severity(got_lo, got_hi, want_lo, want_hi)
        verdict = "agrees with" if sev == "info" else "does not match"
        out.append(Finding(sev, "internal", f"stage {prev.index}->{cur.index}",
                           f"{cur.label} targets {_band(cur.target_low_tflops, cur.target_high_tflops, '{:g}')} "
                           f"TFLOP/s after {_band(prev.target_low_tflops, prev.target_high_tflops, '{:g}')}: "
                           f"{_band(got_lo, got_hi)}x, which {verdict} the {_band(want_lo, want_hi, '{:.3f}')}x "
                           f"claimed for removing {_ids_text(model, new_ids)}."))
    if len(targeted) >= 2:
        first, last = targeted[0], targeted[-1]
        ids = [i for i in model.removed_through(last.index) if i not in model.removed_through(first.index)]
        got_lo = last.target_low_tflops / first.target_high_tflops
        got_hi = last.target_high_tflops / first.target_low_tflops
        want_lo, want_hi = _claimed(model, ids)
        sev = _severity(got_lo, got_hi, want_lo, want_hi)
        out.append(Finding(sev, "internal", f"stage {first.index}->{last.index}",
                           f"the targets grow {_band(got_lo, got_hi)}x from {first.label} to {last.label}, while "
                           f"the product of every claimed gain ({_ids_text(model, ids)}) is "
                           f"{_band(want_lo, want_hi, '{:.3f}')}x."))
    # vs-FA3 column against target / reference
    ref = model.reference
    for s in model.stages:
        if s.vs_fa3_low is None or s.target_low_tflops is None:
            continue
        got_lo, got_hi = s.target_low_tflops / ref.tflops, s.target_high_tflops / ref.tflops
        ok = got_lo >= s.vs_fa3_low * (1 - RATIO_TOL) and got_hi <= s.vs_fa3_high * (1 + RATIO_TOL) \
            and got_lo <= s.vs_fa3_high * (1 + RATIO_TOL) and got_hi >= s.vs_fa3_low * (1 - RATIO_TOL)
        out.append(Finding("info" if ok else "warning", "internal", f"stage {s.index} vs {ref.name}",
                           f"{s.label}: target / {ref.name} reference = {_band(s.target_low_tflops, s.target_high_tflops, '{:g}')}"
                           f" / {ref.tflops:g} = {_band(got_lo, got_hi)}x; the document writes "
                           f"{_band(s.vs_fa3_low, s.vs_fa3_high)}x{'' if ok else ' (they differ)'}."))
    # a TFLOP/s gate with its own threshold beside its stage's target: two figures for one fact
    for g in model.gates:
        s = model.stage(g.stage)
        if g.metric == TFLOPS_METRIC and g.threshold_from == "gate" and g.threshold is not None \
                and s.target_low_tflops is not None and not math.isclose(g.threshold, s.target_low_tflops):
            out.append(Finding("warning", "internal", f"gate {g.id}",
                               f"gate {g.id} checks {g.threshold:g} TFLOP/s while {s.label} targets "
                               f"{_band(s.target_low_tflops, s.target_high_tflops, '{:g}')}; the gate's own figure is "
                               f"used (leave its threshold out to check the stage's target)."))
    # batching and launch claims
    for c in model.constraints:
        a, b, total = (c.claim("per_seq_speedup_b1_b8"), c.claim("per_seq_speedup_b8_b32"),
                       c.claim("per_seq_speedup_total"))
        if a is not None and b is not None and total is not None:
            sev = "info" if math.isclose(a * b, total, rel_tol=0.01) else "warning"
            out.append(Finding(sev, "internal", f"constraint #{c.id} batching",
                               f"per-sequence speedups B=1->8 ({a:g}x) and B=8->32 ({b:g}x) multiply to {a * b:g}x; "
                               f"the document's total is {total:g}x."))
        launch_us, total_us, share = c.claim("launch_us_b32"), c.claim("total_us_b32"), c.claim("launch_overhead_share_b32")
        if launch_us is not None and total_us is not None and share is not None:
            sev = "info" if math.isclose(launch_us / total_us, share, rel_tol=0.02) else "warning"
            out.append(Finding(sev, "internal", f"constraint #{c.id} launch share",
                               f"{launch_us:g} us of launch in {total_us:g} us is {launch_us / total_us:.0%}; "
                               f"the document says {share:.0%}."))
        if total_us is not None:
            try:
                ref_cfg = parse_config(ref.config).with_(B=32)
            except Exception:  # the reference config is a user's text; the check is skipped if it does not parse
                continue
            implied = ref_cfg.tflops_at(total_us / 1000.0)
            sev = _severity(implied / ref.tflops, implied / ref.tflops, 1.0, 1.0)
            out.append(Finding(sev, "internal", f"constraint #{c.id} vs {ref.name} reference",
                               f"{total_us:g} us for the whole B=32 forward at the reference setting ({ref_cfg.id}) "
                               f"is {implied:.0f} TFLOP/s, not the {ref.tflops:g} TFLOP/s the document gives {ref.name}."))
    return out


def _physics(model: EinsteinModel, gpu: GpuSpec, config: AttentionConfig) -> list[Finding]:
    out: list[Finding] = []
    roof = roofline_tflops(config, gpu)
    preds = {p.stage: p for p in predict_all(config, gpu)}
    for s in model.stages:
        if s.target_high_tflops is None:
            continue
        where = f"stage {s.index} vs roofline"
        if s.target_high_tflops > roof:
            out.append(Finding("error", "physics", where,
                               f"{s.label} targets up to {s.target_high_tflops:g} TFLOP/s, above the roofline "
                               f"of {roof:.0f} TFLOP/s for {config.id} on {gpu.key}."))
        else:
            model_txt = ""
            if s.index in preds:
                model_txt = f"; the stage's bound is {preds[s.index].tflops:.0f}"
            out.append(Finding("info", "physics", where,
                               f"{s.label} targets {_band(s.target_low_tflops, s.target_high_tflops, '{:g}')} TFLOP/s: "
                               f"{s.target_high_tflops / roof:.0%} of the {roof:.0f} TFLOP/s roofline for {config.id} "
                               f"on {gpu.key}{model_txt}."))
    # a "memory-bound" claim against the config's roofline
    p0 = preds[0]
    for c in model.constraints:
        util = c.claim("compute_utilization")
        if util is None:
            continue
        compute = max(p0.tensor_ms, p0.exp_ms)
        if p0.hbm_ms < compute:
            out.append(Finding("error", "physics", f"constraint #{c.id} memory-bound",
                               f"the document calls the kernel memory-bound at ~{util:.0%} compute utilization, but "
                               f"{config.id} moves its minimum bytes in {p0.hbm_ms * 1000:.0f} us against "
                               f"{compute * 1000:.0f} us of tensor/exp work on {gpu.key} (arithmetic intensity "
                               f"{config.arithmetic_intensity:.0f} FLOP/B, ridge {gpu.ridge_flop_per_byte:.0f}): "
                               f"HBM cannot hold compute to {util:.0%}."))
        else:
            out.append(Finding("info", "physics", f"constraint #{c.id} memory-bound",
                               f"{config.id} is memory bound on {gpu.key} (HBM {p0.hbm_ms * 1000:.0f} us > compute "
                               f"{compute * 1000:.0f} us), as the document says."))
    # the batching gate against tiles, waves and launch
    for g in model.gates:
        if g.metric != "batching.speedup_vs_b1" or g.threshold is None:
            continue
        c1, c32 = config.with_(B=1), config.with_(B=32)
        s0_1, s0_32 = predict_stage(c1, 0, gpu), predict_stage(c32, 0, gpu)
        s3_1, s3_32 = predict_stage(c1, 3, gpu), predict_stage(c32, 3, gpu)
        sp0 = s0_1.time_ms / (s0_32.time_ms / 32)
        sp3 = s3_1.time_ms / (s3_32.time_ms / 32)
        t32_best = c32.flops / (roofline_tflops(c32, gpu) * 1e12) * 1e3
        t1_generous = s0_1.compute_ms + s0_1.wave_ms + s0_1.host_launch_ms
        sp_max = t1_generous / (t32_best / 32)
        sev = "error" if sp_max < g.threshold else ("warning" if max(sp0, sp3) < g.threshold else "info")
        out.append(Finding(sev, "physics", f"gate {g.id}",
                           f"at B=1, {c1.id} already has {c1.tiles(128)} tiles of 128 rows for {gpu.sm_count} SMs "
                           f"({c1.waves(128, gpu.sm_count):.2f} waves) and one launch serves the whole batch: our "
                           f"model gives a per-sequence speedup B=1->32 of {sp0:.2f}x (stage 0) and {sp3:.2f}x "
                           f"(stage 3); even B=32 at the roofline against B=1 with our stage-0 tail and a whole "
                           f"unhidden launch gives {sp_max:.2f}x, against the gate's >= {g.threshold:g}x."))
    return out


def _matching(anchors: dict, config: AttentionConfig, gpu: GpuSpec, system_prefix: str | None = None) -> list[dict]:
    rows = []
    for a in anchors.get("tflops", []):
        if a["gpu"] != gpu.key or a["dtype"] != config.dtype or a["S"] != config.S or a["D"] != config.D \
                or a["causal"] != config.causal:
            continue
        if system_prefix and not a["system"].startswith(system_prefix):
            continue
        rows.append(a)
    return rows


def _evidence(model: EinsteinModel, gpu: GpuSpec, config: AttentionConfig, anchors: dict) -> list[Finding]:
    out: list[Finding] = []
    facts = {f["id"]: f for f in anchors.get("facts", [])}
    ref = model.reference
    try:
        ref_cfg = parse_config(ref.config)
    except Exception:  # a user's reference config text that does not parse: compare at the checked config
        ref_cfg = config
    ref_gpu = get_gpu(ref.gpu) if ref.gpu else gpu
    fa3 = _matching(anchors, ref_cfg, ref_gpu, system_prefix="FA3")
    peers = [a for a in _matching(anchors, ref_cfg, ref_gpu) if a["system"].startswith("SDPA cuDNN")]
    for a in fa3 + peers:
        ratio = a["tflops_low"] / ref.tflops
        sev = _severity(ratio, a["tflops_high"] / ref.tflops, 1.0, 1.0)
        out.append(Finding(sev, "evidence", f"{ref.name} reference",
                           f"the document's {ref.name} figure of {ref.tflops:g} TFLOP/s ({ref_cfg.id}) against "
                           f"{a['system']} {_band(a['tflops_low'], a['tflops_high'], '{:g}')} TFLOP/s at S={a['S']} "
                           f"D={a['D']} {'causal' if a['causal'] else 'full'} (B={a['B']}, H={a['H']}; "
                           f"{a['kind']}: {a['source']})."))
    if not fa3 and not peers:
        out.append(Finding("info", "evidence", f"{ref.name} reference",
                           f"no published or measured anchor matches {ref_cfg.id} on {ref_gpu.key}."))
    # stage targets against what existing kernels reach at the checked config
    existing = [a for a in _matching(anchors, config, gpu) if a["kind"] == "measured" or a["system"] == "Triton"]
    if existing:
        best = max(existing, key=lambda a: a["tflops_high"])
        plain = sorted((a for a in existing if "Triton" in a["system"]), key=lambda a: a["kind"] != "measured")
        stages = [s for s in model.stages if s.target_high_tflops is not None]
        if plain and stages:
            s0 = stages[0]
            p = plain[0]
            sev = _severity(s0.target_low_tflops, s0.target_high_tflops, p["tflops_low"], p["tflops_high"])
            out.append(Finding(sev, "evidence", f"stage {s0.index} target",
                               f"{s0.label} targets {_band(s0.target_low_tflops, s0.target_high_tflops, '{:g}')} TFLOP/s; "
                               f"a {p['system']} reaches {_band(p['tflops_low'], p['tflops_high'], '{:g}')} at "
                               f"S={p['S']} D={p['D']} ({p['kind']}: {p['source']})."))
        if stages:
            last = stages[-1]
            sev = "info" if last.target_high_tflops >= best["tflops_low"] else "warning"
            out.append(Finding(sev, "evidence", f"stage {last.index} target",
                               f"{last.label}'s goal of {_band(last.target_low_tflops, last.target_high_tflops, '{:g}')} "
                               f"TFLOP/s (\"beat FA3\") is below the {_band(best['tflops_low'], best['tflops_high'], '{:g}')} "
                               f"that {best['system']} reaches at this setting ({best['kind']}: {best['source']})."
                               if sev == "warning" else
                               f"{last.label}'s goal reaches the best known figure at this setting ({best['system']})."))
    # constraint-level claims against facts
    for c in model.constraints:
        if c.claim("launches_per_batch_element") is not None and "one_launch_per_batch" in facts:
            f = facts["one_launch_per_batch"]
            out.append(Finding("error", "evidence", f"constraint #{c.id} launch",
                               f"the document says FA3 makes one launch per batch element; {f['text']} ({f['source']}), "
                               f"so there is no per-element launch cost to remove."))
        if c.claim("per_seq_speedup_total") is not None and "batching_speedup_b1_b32" in facts:
            f = facts["batching_speedup_b1_b32"]
            total = c.claim("per_seq_speedup_total")
            out.append(Finding(_severity(f["value"], f["value"], total, total), "evidence",
                               f"constraint #{c.id} batching",
                               f"the document expects {total:g}x per sequence from batching; measured: {f['text']} "
                               f"({f['source']})."))
        if c.claim("warp_divergence_fraction_high") is not None and "branch_uniformity_pct" in facts:
            f = facts["branch_uniformity_pct"]
            out.append(Finding("warning", "evidence", f"constraint #{c.id} divergence",
                               f"the document puts FA3's causal-mask divergence at 5-10%; measured {f['text']} = "
                               f"{f['value']:g}% ({f['source']}), and FA3 splits masked from unmasked iterations."))
        if c.key == "launch" and "persistent_gain_1k" in facts:
            f = facts["persistent_gain_1k"]
            out.append(Finding(_severity(1 + c.gain_low, 1 + c.gain_high, 1.015, 1 + f["value"]), "evidence",
                               f"constraint #{c.id} persistent gain",
                               f"the persistent stage is credited +{c.gain_low:.0%}-{c.gain_high:.0%}; published: "
                               f"{f['text']} ({f['source']})."))
        if c.key == "memory" and "fa3_ablation_warp_specialization" in facts:
            f = facts["fa3_ablation_warp_specialization"]
            out.append(Finding(_severity(1 + c.gain_low, 1 + c.gain_high, 1.14, 1.16), "evidence",
                               f"constraint #{c.id} overlap gain",
                               f"the overlap stage is credited +{c.gain_low:.0%}-{c.gain_high:.0%}; published: "
                               f"{f['text']} ({f['source']})."))
    return out


def check_model(
    model: EinsteinModel,
    gpu: GpuSpec,
    config: AttentionConfig = suites.SEED,
    anchors: dict | None = None,
) -> list[Finding]:
    """Every finding about `model`, errors first, then warnings, then information."""
    anchors = load_anchors() if anchors is None else anchors
    findings = _internal(model) + _physics(model, gpu, config) + _evidence(model, gpu, config, anchors)
    kind_order = {"internal": 0, "physics": 1, "evidence": 2}
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], kind_order[f.kind]))


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """Findings as a DataFrame with columns severity, kind, subject, message."""
    return pd.DataFrame([asdict(f) for f in findings], columns=["severity", "kind", "subject", "message"])
