"""The model is named by its version (issue 22): today's predictions for fixed inputs are held in
tests/data/model_golden/v<MODEL_VERSION>.json.gz, so a change to a term of the model or the bound fails here until
perfmodel.model.predictive.MODEL_VERSION is bumped and scripts/model_golden.py has written that version's file.

The inputs are stored with the predictions (the instruction mix, the GPU's figures and micro-benchmarks), so
nothing here compiles: a change to a kernel, the hardware table or where the code lives changes nothing."""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
from pathlib import Path

import pytest

from kernels.hardware import GpuSpec, get_gpu
from kernels.workload import parse_config
from perfmodel.model import bound, predictive
from perfmodel.model.mix_cache import kernel_from_dict, mix_from_dict

GOLDEN = Path(__file__).parent / "data" / "model_golden"
REL = 1e-9  # the same inputs give the same floating-point operations: only summation order may differ


def _golden(version: int) -> dict:
    path = GOLDEN / f"v{version}.json.gz"
    assert path.exists(), (f"no golden predictions for model v{version}: run `python scripts/model_golden.py` "
                           "after bumping MODEL_VERSION")
    return json.loads(gzip.decompress(path.read_bytes()))


def _gpu(record: dict) -> GpuSpec:
    """The GPU figures the golden prediction was made with; a field added to GpuSpec since (which that model version
    did not read, or the version would have been bumped) takes today's table value."""
    values = {k: v for k, v in record.items() if k in {f.name for f in dataclasses.fields(GpuSpec)}}
    values["measured"] = frozenset(values["measured"])
    values["micro"] = tuple(tuple(kv) for kv in values["micro"])
    return dataclasses.replace(get_gpu(record["key"]), **values)


DOC = _golden(predictive.MODEL_VERSION)


def test_the_golden_file_is_todays_version():
    assert DOC["model_version"] == predictive.MODEL_VERSION


@pytest.mark.parametrize("case", DOC["cases"], ids=lambda c: f"{c['config']}-s{c['stage']}-{c['gpu']['key']}-"
                                                            f"{'measured' if c['host_launch_us'] else 'datasheet'}-launch")
def test_todays_model_predicts_what_its_version_predicted(case):
    mix = mix_from_dict(case["mix"], kernel_from_dict(DOC["kernels"][case["mix"]["kernel_hash"]]))
    config, gpu = parse_config(case["config"]), _gpu(case["gpu"])
    got = predictive.price(mix, config, case["stage"], gpu, case["host_launch_us"])
    want = case["model"]
    bump = ("the model's prediction changed for the same inputs: bump perfmodel.model.predictive.MODEL_VERSION and run "
            "`python scripts/model_golden.py` (stored predictions of the old version then score 'computed now')")
    for name in ("time_ms", "steady_ms", "tail_ms", "prologue_epilogue_ms", "hbm_ms", "launch_ms"):
        assert math.isclose(getattr(got, name), want[name], rel_tol=REL, abs_tol=1e-15), (name, bump)
    for term, value in want["iteration_us"].items():
        assert math.isclose(got.iteration_us[term], value, rel_tol=REL, abs_tol=1e-15), (term, bump)
    assert (got.binding, got.programs_per_sm, got.math_groups, got.slots) == (
        want["binding"], want["programs_per_sm"], want["math_groups"], want["slots"]), bump
    assert got.unpriced == want["unpriced"], bump
    assert math.isclose(bound.predict_stage(config, case["stage"], gpu).time_ms, case["bound_time_ms"],
                        rel_tol=REL), bump


def test_the_inputs_hash_names_what_a_prediction_read():
    # the same inputs give the same hash; another compiled kernel (the mix) gives another
    def priced(case):
        mix = mix_from_dict(case["mix"], kernel_from_dict(DOC["kernels"][case["mix"]["kernel_hash"]]))
        return predictive.price(mix, parse_config(case["config"]), case["stage"], _gpu(case["gpu"]),
                                case["host_launch_us"])

    first, other = DOC["cases"][0], next(c for c in DOC["cases"] if c["stage"] != DOC["cases"][0]["stage"])
    assert priced(first).inputs_hash == priced(first).inputs_hash
    assert priced(first).inputs_hash != priced({**first, "mix": other["mix"]}).inputs_hash
