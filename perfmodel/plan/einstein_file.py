"""The plan's model file read: TOML (the shipped `perfmodel/data/einstein.toml`, or a user's `--model FILE`) into
an `EinsteinModel` (perfmodel/plan/einstein.py), every key checked. Every problem ends in one sentence
(`ModelError`, a `UserError`) naming the entry and the key; a `timings.tflops` gate without a threshold takes its
stage's target (`Gate.threshold_from` says so).
"""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path

from kernels.suites import SUITES

from perfmodel.plan.einstein import (COMPARISONS, DETERMINISM_METRIC, EVIDENCE_SOURCES, GATE_KEYS, GATE_KINDS,
                                     PEER_RATIO_PREFIX, TFLOPS_METRIC, Claim, Constraint, EinsteinModel, Evidence,
                                     Gate, ModelError, Reference, Stage)


# ---- validation helpers ----------------------------------------------------------------------------------------


def _get(table: dict, key: str, where: str, kind: type | tuple, required: bool = True, default=None):
    if key not in table:
        if required:
            raise ModelError(f"{where} is missing the key {key!r}.")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        words = {float: "a number", int: "a whole number", str: "a string", bool: "true or false",
                 list: "a list", dict: "a table"}
        names = " or ".join(words[k] for k in kinds)
        raise ModelError(f"{where}.{key} must be {names}, got {value!r}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelError(f"{where}.{key} must be a finite number, got {value!r}.")
    return value


def _band(table: dict, low_key: str, high_key: str, where: str, required: bool) -> tuple[float | None, float | None]:
    low = _get(table, low_key, where, float, required=required)
    high = _get(table, high_key, where, float, required=required)
    if (low is None) != (high is None):
        raise ModelError(f"{where} gives {low_key if low is not None else high_key} without its partner; give both or neither.")
    if low is not None and low > high:
        raise ModelError(f"{where}.{low_key} ({low:g}) is larger than {high_key} ({high:g}).")
    return low, high


def _list_of_tables(doc: dict, key: str, where: str) -> list[dict]:
    items = _get(doc, key, where, list)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ModelError(f"{where}{key}[{i}] must be a table ([[{key}]]), got {item!r}.")
    return items


def _parse(doc: dict, path: str) -> EinsteinModel:
    version = _get(doc, "schema_version", "the model file", int)
    if version != 1:
        raise ModelError(f"the model file has schema_version {version}; this perfmodel reads version 1.")
    document = _get(doc, "document", "the model file", dict)
    ref = _get(doc, "reference", "the model file", dict)
    reference = Reference(
        name=_get(ref, "name", "[reference]", str),
        tflops=_get(ref, "tflops", "[reference]", float),
        quote=_get(ref, "quote", "[reference]", str),
        config=_get(ref, "config", "[reference]", str),
        gpu=_get(ref, "gpu", "[reference]", str),
        config_note=_get(ref, "config_note", "[reference]", str, required=False, default=""),
    )
    if reference.tflops <= 0:
        raise ModelError(f"[reference].tflops must be positive, got {reference.tflops:g}.")

    constraints: list[Constraint] = []
    for i, c in enumerate(_list_of_tables(doc, "constraints", "")):
        where = f"constraints[{i}]"
        evidence = []
        for j, e in enumerate(_list_of_tables(c, "evidence", f"{where}.") if "evidence" in c else []):
            ew = f"{where}.evidence[{j}]"
            source = _get(e, "source", ew, str)
            if source not in EVIDENCE_SOURCES:
                raise ModelError(f"{ew}.source must be one of {', '.join(EVIDENCE_SOURCES)}, got {source!r}.")
            evidence.append(Evidence(_get(e, "signal", ew, str), source, _get(e, "metric", ew, str),
                                     _get(e, "supports_claim_if", ew, str, required=False, default="")))
        claims = []
        for j, cl in enumerate(_list_of_tables(c, "claims", f"{where}.") if "claims" in c else []):
            cw = f"{where}.claims[{j}]"
            claims.append(Claim(_get(cl, "name", cw, str), _get(cl, "value", cw, float),
                                _get(cl, "unit", cw, str, required=False, default=""),
                                _get(cl, "quote", cw, str, required=False, default="")))
        names = [cl.name for cl in claims]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ModelError(f"{where} has two claims named {dup!r}.")
        gain_low, gain_high = _band(c, "gain_low", "gain_high", where, required=True)
        if gain_low < 0:
            raise ModelError(f"{where}.gain_low must be a fraction of at least 0 (0.05 = +5%), got {gain_low:g}.")
        constraints.append(Constraint(
            id=_get(c, "id", where, int), key=_get(c, "key", where, str), name=_get(c, "name", where, str),
            fa3_claim=_get(c, "fa3_claim", where, str), removal=_get(c, "removal", where, str),
            gain_low=gain_low, gain_high=gain_high, gain_quote=_get(c, "gain_quote", where, str),
            status=_get(c, "status", where, str), removed_by_stage=_get(c, "removed_by_stage", where, int),
            removed_by_note=_get(c, "removed_by_note", where, str, required=False, default=""),
            evidence=tuple(evidence), claims=tuple(claims),
        ))
    for attr in ("id", "key"):
        values = [getattr(c, attr) for c in constraints]
        dup = next((v for v in values if values.count(v) > 1), None)
        if dup is not None:
            raise ModelError(f"two constraints have the {attr} {dup!r}; constraint {attr}s must be unique.")
    ids = {c.id for c in constraints}

    stages: list[Stage] = []
    for i, s in enumerate(_list_of_tables(doc, "stages", "")):
        where = f"stages[{i}]"
        target_low, target_high = _band(s, "target_low_tflops", "target_high_tflops", where, required=False)
        vs_low, vs_high = _band(s, "vs_fa3_low", "vs_fa3_high", where, required=False)
        for name, value in (("target_low_tflops", target_low), ("vs_fa3_low", vs_low)):
            if value is not None and value <= 0:
                raise ModelError(f"{where}.{name} must be positive, got {value:g}.")
        removes = _get(s, "removes", where, list)
        for cid in removes:
            if isinstance(cid, bool) or not isinstance(cid, int):
                raise ModelError(f"{where}.removes must list constraint ids (whole numbers), got {cid!r}.")
            if cid not in ids:
                raise ModelError(f"{where}.removes names constraint #{cid}, which the model does not define.")
        criteria = _get(s, "success_criteria", where, list, required=False, default=[])
        if not all(isinstance(x, str) for x in criteria):
            raise ModelError(f"{where}.success_criteria must be a list of strings.")
        stages.append(Stage(
            index=_get(s, "index", where, int), impl=_get(s, "impl", where, str), label=_get(s, "label", where, str),
            target_low_tflops=target_low, target_high_tflops=target_high,
            target_quote=_get(s, "target_quote", where, str, required=False, default=""),
            vs_fa3_low=vs_low, vs_fa3_high=vs_high,
            vs_fa3_quote=_get(s, "vs_fa3_quote", where, str, required=False, default=""),
            removes=tuple(removes), removes_quote=_get(s, "removes_quote", where, str, required=False, default=""),
            expected_gain=_get(s, "expected_gain", where, str, required=False, default=""),
            success_criteria=tuple(criteria),
        ))
    if not stages:
        raise ModelError("the model file defines no [[stages]].")
    indices = [s.index for s in stages]
    if sorted(indices) != list(range(len(stages))):
        raise ModelError(f"stage indices must be 0..{len(stages) - 1} with none missing or repeated, got {indices}.")
    stages.sort(key=lambda s: s.index)
    impls = [s.impl for s in stages]
    dup = next((v for v in impls if impls.count(v) > 1), None)
    if dup:
        raise ModelError(f"two stages have the impl {dup!r}; stage impls must be unique.")
    for c in constraints:
        if not 0 <= c.removed_by_stage < len(stages):
            raise ModelError(f"constraint #{c.id}.removed_by_stage is {c.removed_by_stage}, which is not a stage index.")
        if c.id not in stages[c.removed_by_stage].removes:
            raise ModelError(f"constraint #{c.id} says stage {c.removed_by_stage} removes it, "
                             f"but that stage's removes list does not name it.")

    gates = [_parse_gate(g, f"gates[{i}]", stages)
             for i, g in enumerate(_list_of_tables(doc, "gates", "") if "gates" in doc else [])]
    gids = [g.id for g in gates]
    dup = next((v for v in gids if gids.count(v) > 1), None)
    if dup:
        raise ModelError(f"two gates have the id {dup!r}; gate ids must be unique.")

    return EinsteinModel(
        title=_get(document, "title", "[document]", str, required=False, default=""),
        date=_get(document, "date", "[document]", str, required=False, default=""),
        source=_get(document, "source", "[document]", str, required=False, default=""),
        path=path, reference=reference, constraints=tuple(sorted(constraints, key=lambda c: c.id)),
        stages=tuple(stages), gates=tuple(gates),
    )


def _whole(table: dict, key: str, where: str, least: int) -> int | None:
    value = _get(table, key, where, int, required=False)
    if value is not None and value < least:
        raise ModelError(f"{where}.{key} must be at least {least}, got {value}.")
    return value


def _parse_gate(g: dict, where: str, stages: list[Stage]) -> Gate:
    unknown = sorted(k for k in g if k not in GATE_KEYS)
    if unknown:
        raise ModelError(f"{where} has the unknown key {unknown[0]!r}; a gate's keys are {', '.join(GATE_KEYS)}.")
    gid = _get(g, "id", where, str)
    comparison = _get(g, "comparison", where, str)
    if comparison not in COMPARISONS:
        raise ModelError(f"{where}.comparison must be one of {', '.join(COMPARISONS)}, got {comparison!r}.")
    kind = _get(g, "kind", where, str)
    if kind not in GATE_KINDS:
        raise ModelError(f"{where}.kind must be one of {', '.join(GATE_KINDS)}, got {kind!r}.")
    stage = _get(g, "stage", where, int)
    if not 0 <= stage < len(stages):
        raise ModelError(f"{where}.stage is {stage}, which is not a stage index.")
    metric = _get(g, "metric", where, str)
    measurable = _get(g, "measurable", where, bool)
    checked = comparison != "report" and measurable

    # the threshold: the gate's own, else (a stage TFLOP/s gate) its stage's target
    threshold = _get(g, "threshold", where, float, required=False)
    threshold_high = _get(g, "threshold_high", where, float, required=False)
    threshold_from = "gate"
    target = stages[stage]
    if comparison != "report" and threshold is None:
        if metric != TFLOPS_METRIC:
            raise ModelError(f"{where} is missing the key 'threshold'.")
        if target.target_low_tflops is None:
            raise ModelError(f"{where} gives no threshold and stage {stage} has no target_low_tflops to take it "
                             f"from; give the gate a threshold or the stage a target.")
        if threshold_high is not None:
            raise ModelError(f"{where} gives threshold_high without threshold; give both or neither (then both "
                             f"come from stage {stage}'s target).")
        threshold, threshold_from = target.target_low_tflops, "stage target"
        threshold_high = target.target_high_tflops if comparison == "between" else None
    if comparison == "between" and threshold_high is None:
        raise ModelError(f"{where} is missing the key 'threshold_high'.")
    if threshold_high is not None and threshold is not None and threshold > threshold_high:
        raise ModelError(f"{where}.threshold ({threshold:g}) is larger than threshold_high ({threshold_high:g}).")
    rel_tol = _get(g, "rel_tol", where, float, required=comparison == "approx")
    if rel_tol is not None and not 0 <= rel_tol < 1:
        raise ModelError(f"{where}.rel_tol must be a fraction from 0 to below 1 (0.10 = ±10%), got {rel_tol:g}.")

    # what the gate covers
    suite = _get(g, "suite", where, str, required=checked)
    if suite is not None and suite not in SUITES:
        raise ModelError(f"{where}.suite must be one of {', '.join(SUITES)}, got {suite!r}.")
    batch = _whole(g, "B", where, 1)
    if batch is not None and suite is None:
        raise ModelError(f"{where} gives B without a suite to take that batch size from.")
    covered = [c for c in SUITES[suite] if batch is None or c.B == batch] if suite else []
    if suite and not covered:
        raise ModelError(f"{where}.B is {batch}, but suite {suite!r} has no config with B={batch}.")
    min_configs = _whole(g, "min_configs", where, 1)
    if min_configs is not None and min_configs > len(covered):
        raise ModelError(f"{where}.min_configs is {min_configs}, more than the {len(covered)} config(s) it covers.")
    repetitions = _whole(g, "repetitions", where, 1)
    if repetitions is not None and metric != DETERMINISM_METRIC:
        raise ModelError(f"{where} gives repetitions, which only a {DETERMINISM_METRIC} gate reads.")
    peers = _get(g, "peers", where, list, required=checked and metric.startswith(PEER_RATIO_PREFIX), default=[])
    if peers and not metric.startswith(PEER_RATIO_PREFIX):
        raise ModelError(f"{where} gives peers, which only a '{PEER_RATIO_PREFIX} ...' gate reads.")
    if not all(isinstance(p, str) and p for p in peers) or (metric.startswith(PEER_RATIO_PREFIX) and checked
                                                             and not peers):
        raise ModelError(f"{where}.peers must be a non-empty list of implementation names, e.g. [\"sdpa_cudnn\"].")
    return Gate(
        id=gid, stage=stage, kind=kind, quote=_get(g, "quote", where, str), metric=metric, comparison=comparison,
        threshold=threshold, threshold_high=threshold_high, rel_tol=rel_tol,
        configs=_get(g, "configs", where, str, required=False, default=""), measurable=measurable,
        note=_get(g, "note", where, str, required=False, default=""), suite=suite, B=batch,
        min_configs=min_configs, repetitions=repetitions, peers=tuple(peers), threshold_from=threshold_from,
    )


def default_model_path() -> Path:
    return Path(str(resources.files("perfmodel") / "data" / "einstein.toml"))


def load_model(path: str | Path | None = None) -> EinsteinModel:
    """Load and validate a model file (the shipped one when `path` is None)."""
    p = Path(path) if path is not None else default_model_path()
    if not p.exists():
        raise ModelError(f"model file {str(p)!r} does not exist.")
    if not p.is_file():
        raise ModelError(f"model file {str(p)!r} is not a file.")
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"model file {str(p)!r} is not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as e:
        raise ModelError(f"model file {str(p)!r} is not valid TOML ({e}).") from None
    from perfmodel.strict import config_text_problem, empty_toml_key

    empty = empty_toml_key(doc)
    if empty:
        raise ModelError(f"model file {str(p)!r} has an empty key in {empty}; every key needs a name.")
    reference = doc.get("reference") if isinstance(doc.get("reference"), dict) else {}
    if isinstance(reference.get("config"), str) and config_text_problem(reference["config"]):
        raise ModelError(f"model file {str(p)!r}: [reference] {config_text_problem(reference['config'])}.")
    return _parse(doc, str(p))
