"""GPU state per timed case (collectors/timing/gpu_state.py) on the CPU: NVML through a fake `pynvml` module with
scripted readings, nvidia-smi through a faked subprocess call, the per-case summary in the `timings` row and
run.json, and the flag on cases timed while throttled in `collect`'s summary, the report and the dashboard.

The bit values and function names the fake offers are nvidia-ml-py 13.615's pynvml.py; what a real driver
returns (which fields an H100 / H200 supports, how often sw_power_cap is set) is only seen on the GPU."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from collectors.timing import gpu_state
from collectors.timing.gpu_state import GpuSample, GpuStateSampler
from kernels.suites import SEED
from runstore.reader import load_run
from runstore.writer import RunWriter
from synthetic_run import make_run, synthetic_run_dir, timing_row  # noqa: F401 (fixture)
from test_gpu_case import CFG, fake_timed_case

SW_POWER_CAP, IDLE, SW_THERMAL, APP_CLOCKS = 0x4, 0x1, 0x20, 0x2


class NVMLError(Exception):
    """pynvml's error: `str()` is NVML's message for the code."""

    _MESSAGES = {3: "Not Supported", 9: "Driver Not Loaded", 13: "Function Not Found"}

    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return self._MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def fake_pynvml(readings: dict, *, event_api=True, throttle_api=True, init_error=None) -> types.ModuleType:
    """A pynvml stand-in. `readings[field]` is a list of values returned in turn (the last repeats) or an
    exception to raise on every call; fields: sm, mem, power_mw, temp, events, throttle."""
    calls = {k: 0 for k in readings}

    def value(field):
        v = readings[field]
        if isinstance(v, Exception):
            raise v
        i = calls[field]
        calls[field] += 1
        return v[min(i, len(v) - 1)]

    def init():
        if init_error is not None:
            raise init_error

    m = types.ModuleType("pynvml")
    m.NVMLError, m.NVML_CLOCK_SM, m.NVML_CLOCK_MEM, m.NVML_TEMPERATURE_GPU = NVMLError, 1, 2, 0
    m.nvmlInit = init
    m.nvmlDeviceGetHandleByIndex = lambda i: "handle"
    m.nvmlDeviceGetHandleByUUID = lambda u: "handle"
    m.nvmlDeviceGetClockInfo = lambda h, clock: value("sm" if clock == m.NVML_CLOCK_SM else "mem")
    m.nvmlDeviceGetPowerUsage = lambda h: value("power_mw")
    m.nvmlDeviceGetTemperature = lambda h, sensor: value("temp")
    if event_api:
        m.nvmlDeviceGetCurrentClocksEventReasons = lambda h: value("events")
    if throttle_api:
        m.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: value("throttle")
    return m


@pytest.fixture
def no_smi(monkeypatch):
    """Neither torch's device UUID nor nvidia-smi: only what the test gives counts."""
    monkeypatch.setattr(gpu_state, "smi_device", lambda: None)
    monkeypatch.setattr(gpu_state.shutil, "which", lambda name: None)


def _with_pynvml(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "pynvml", module)


READINGS = {"sm": [1980, 1755], "mem": [2619], "power_mw": [650_000, 700_000], "temp": [55, 61],
            "events": [SW_POWER_CAP | IDLE, 0], "throttle": [SW_THERMAL]}


def test_nvml_reads_every_field(monkeypatch, no_smi):
    _with_pynvml(monkeypatch, fake_pynvml(READINGS))
    s = GpuStateSampler()
    assert s.source == "nvml" and s.available and not s.missing
    first = s.sample()  # the probe read each field once; this is the second reading of each
    assert (first.sm_clock_mhz, first.mem_clock_mhz, first.power_w, first.temperature_c) == (1755, 2619, 700, 61)
    assert first.clock_event_reasons == 0  # the newer ClocksEventReasons API wins when both exist


def test_one_field_failing_keeps_the_others(monkeypatch, no_smi):
    _with_pynvml(monkeypatch, fake_pynvml({**READINGS, "power_mw": NVMLError(3)}))
    s = GpuStateSampler()
    got = s.sample()
    assert got.power_w is None and got.sm_clock_mhz == 1755 and got.temperature_c == 61
    assert s.missing == {"power_w": "NVML: NVMLError: Not Supported"}
    assert s.summary()["power_w"] is None and s.summary()["missing"]["power_w"].endswith("Not Supported")


def test_a_field_failing_later_is_none_for_that_sample(monkeypatch, no_smi):
    readings = dict(READINGS, temp=[55])
    _with_pynvml(monkeypatch, fake_pynvml(readings))
    s = GpuStateSampler()
    readings["temp"] = NVMLError(999)  # fails from now on
    got = s.sample()
    assert got.temperature_c is None and got.sm_clock_mhz == 1755
    assert "on some samples" in s.missing["temperature_c"]


@pytest.mark.parametrize("event_api, throttle_api, events, expected", [
    (False, True, [0], SW_THERMAL),  # an older pynvml: only ClocksThrottleReasons
    (True, False, [SW_POWER_CAP], SW_POWER_CAP),  # a newer one without the deprecated name
    (True, True, NVMLError(13), SW_THERMAL),  # newer bindings, older driver: the C symbol is missing
])
def test_both_throttle_reason_apis(monkeypatch, no_smi, event_api, throttle_api, events, expected):
    _with_pynvml(monkeypatch, fake_pynvml({**READINGS, "events": events}, event_api=event_api,
                                          throttle_api=throttle_api))
    s = GpuStateSampler()
    assert s.sample().clock_event_reasons == expected and "clock_event_reasons" not in s.missing


def test_says_what_failed_when_nvml_cannot_be_used(monkeypatch, no_smi):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    s = GpuStateSampler()
    assert not s.available and s.reason.startswith("no GPU state source: pynvml is not installed")
    assert "nvidia-smi is not installed" in s.reason
    _with_pynvml(monkeypatch, fake_pynvml(READINGS, init_error=NVMLError(9)))
    s = GpuStateSampler()
    assert "NVML failed: NVMLError: Driver Not Loaded" in s.reason and "pynvml is not installed" not in s.reason
    assert s.summary() == {"source": None, "n_samples": 0, "reason": s.reason}


def _fake_smi(monkeypatch, answers: dict):
    """nvidia-smi through a faked subprocess.run: `answers[query] = (rc, stdout)`; unknown queries fail the way
    nvidia-smi fails on a field it does not know."""
    seen = []

    def run(cmd, **_):
        query = next(a for a in cmd if a.startswith("--query-gpu=")).split("=", 1)[1]
        seen.append(query)
        rc, out = answers.get(query, (2, f'Field "{query}" is not a valid field to query.'))
        return subprocess.CompletedProcess(cmd, rc, stdout=out if rc == 0 else "", stderr="" if rc == 0 else out)

    monkeypatch.setattr(gpu_state.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(gpu_state.subprocess, "run", run)
    return seen


def test_nvidia_smi_fallback_parses_every_field(monkeypatch):
    monkeypatch.setattr(gpu_state, "smi_device", lambda: None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    # an older nvidia-smi: clocks_throttle_reasons.active, not clocks_event_reasons.active; power not available
    query = "clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_throttle_reasons.active"
    seen = _fake_smi(monkeypatch, {
        "clocks.sm": (0, "1980"), "clocks.mem": (0, "2619"), "power.draw": (0, "[N/A]"),
        "temperature.gpu": (0, "48"), "clocks_throttle_reasons.active": (0, "0x0000000000000001"),
        query: (0, "1755, 2619, [N/A], 63, 0x0000000000000024\n"),
    })
    s = GpuStateSampler()
    assert s.source == f"nvidia-smi --query-gpu={query}" and "clocks_event_reasons.active" in seen
    assert s.nvml_reason.startswith("pynvml is not installed")
    got = s.sample()
    assert (got.sm_clock_mhz, got.mem_clock_mhz, got.power_w, got.temperature_c) == (1755, 2619, None, 63)
    assert gpu_state.reason_names(got.clock_event_reasons) == ["sw_power_cap", "sw_thermal"]
    assert s.missing == {"power_w": "nvidia-smi gave '[N/A]' for power.draw (on some samples)"}
    assert s.summary()["nvml_reason"].startswith("pynvml is not installed")


def test_nvidia_smi_field_it_does_not_know_is_missing_not_fatal(monkeypatch):
    monkeypatch.setattr(gpu_state, "smi_device", lambda: None)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    _fake_smi(monkeypatch, {"clocks.sm": (0, "1980"), "clocks.mem": (0, "2619"),
                            "clocks.sm,clocks.mem": (0, "1980, 2619")})
    s = GpuStateSampler()
    got = s.sample()
    assert (got.sm_clock_mhz, got.power_w, got.clock_event_reasons) == (1980, None, None)
    assert s.missing["power_w"] == 'nvidia-smi failed: Field "power.draw" is not a valid field to query.'
    assert "clocks_throttle_reasons.active" in s.missing["clock_event_reasons"]  # the last name it tried


# ---- the per-case summary ------------------------------------------------------------------------------------
def _sample(t, sm=1980.0, power=600.0, temp=50.0, reasons=0):
    return GpuSample(t, sm, 2619.0, power, temp, reasons)


def test_case_state_medians_max_and_union_of_reasons():
    state = gpu_state.case_state([_sample(0, 1980, 600, 50, IDLE), _sample(1, 1755, 700, 63, SW_POWER_CAP),
                                  _sample(2, 1800, 690, 58, SW_THERMAL | APP_CLOCKS)])
    assert state == {"sm_clock_mhz": 1800, "mem_clock_mhz": 2619.0, "power_w": 690, "temperature_c": 63,
                     "throttle_reasons": "sw_power_cap,sw_thermal", "throttled": True}


def test_idle_and_settings_are_not_throttling_and_unread_is_none():
    assert gpu_state.case_state([_sample(0, reasons=IDLE | APP_CLOCKS | 0x100)])["throttled"] is False
    assert gpu_state.case_state([_sample(0, reasons=IDLE)])["throttle_reasons"] == ""
    unread = gpu_state.case_state([_sample(0, reasons=None, power=None)])
    assert unread["throttled"] is None and unread["throttle_reasons"] is None and unread["power_w"] is None
    assert unread["sm_clock_mhz"] == 1980.0  # the clocks were read: kept
    assert set(gpu_state.case_state([]).values()) == {None}  # no sample in the window: nothing measured
    assert gpu_state.reason_names(0x800) == ["bit_0x800"] and gpu_state.reason_names(0x800, True) == []


def test_run_json_summary_counts_throttled_cases(monkeypatch, no_smi):
    _with_pynvml(monkeypatch, fake_pynvml(READINGS))
    s = GpuStateSampler()
    s.samples = [_sample(1.0, 1980, 600, 50, IDLE), _sample(2.0, 1755, 700, 66, SW_POWER_CAP),
                 _sample(3.0, 1980, 650, 60, 0)]
    assert s.case_state(0.5, 1.5)["throttled"] is False and s.case_state(1.5, 3.5)["throttled"] is True
    got = s.summary()
    assert got["power_w"] == {"min": 600, "median": 650, "max": 700} and got["temperature_c"] == {"max": 66}
    assert got["clock_event_reasons_seen"] == ["gpu_idle", "sw_power_cap"]
    assert got["throttle_reasons_seen"] == ["sw_power_cap"] and (got["n_cases"], got["n_cases_throttled"]) == (2, 1)
    assert got["sm_clock_mhz"] == {"min": 1755, "median": 1980, "max": 1980}


# ---- collect: the timings row and run.json ---------------------------------------------------------------------
def test_timings_row_carries_the_gpu_state(tmp_path, monkeypatch, no_smi):
    from collectors.sweep import local, options

    _with_pynvml(monkeypatch, fake_pynvml({**READINGS, "events": [SW_POWER_CAP]}))
    sampler = GpuStateSampler()
    # two readings while the case runs: what the sampler's thread records on the GPU
    impl = fake_timed_case(monkeypatch, [0.5, 0.51, 0.49], during=lambda: (sampler.sample(), sampler.sample()))
    collector = local._Collector(options.CollectOptions(determinism_runs=2, out_dir=tmp_path))
    writer = RunWriter(tmp_path / "run", {"suite": "seed", "environment": {"gpu_name": "fake"}})
    collector._gpu_case(writer, impl, CFG, sampler)
    collector._record_clocks(writer, sampler)
    writer.finish("complete")

    run = load_run(writer.path)
    t = run.table("timings").iloc[0]
    assert (t["sm_clock_mhz"], t["power_w"], t["temperature_c"]) == (1755, 700, 61)
    assert t["throttle_reasons"] == "sw_power_cap" and bool(t["throttled"]) is True
    clocks = run.environment["clocks_during_timing"]
    assert clocks["source"] == "nvml" and clocks["n_cases_throttled"] == 1
    assert clocks["throttle_reasons_seen"] == ["sw_power_cap"] and clocks["power_w"]["max"] == 700


# ---- the flag: collect's summary, the report, the dashboard -----------------------------------------------------
@pytest.fixture
def throttled_run(tmp_path):
    """The synthetic run with GPU state on every seed timing and stage4_overlap timed while power-capped."""
    path = make_run(tmp_path)
    w = RunWriter(path, resume=True)
    rows = []
    for impl in ("stage3_persistent", "stage4_overlap"):
        hot = impl == "stage4_overlap"
        rows.append({**timing_row(impl, SEED, 0.45 if not hot else 0.40), "sm_clock_mhz": 1665.0 if hot else 1980.0,
                     "mem_clock_mhz": 2619.0, "power_w": 700.0, "temperature_c": 71.0 if hot else 60.0,
                     "throttle_reasons": "sw_power_cap" if hot else "", "throttled": hot})
    w.append("timings", rows)
    w.finish("complete")
    return path


def test_report_marks_throttled_cases(throttled_run):
    from perfmodel.reports.report_data import collect
    from perfmodel.reports.reporting import build_report

    run = load_run(throttled_run)
    html = build_report(run, fmt="html")
    assert '<dt>throttled</dt><dd class="warn">1 of 2 timed cases ran while the GPU throttled' in html
    assert f"stage4_overlap {SEED.id} (sw_power_cap)" in html
    assert "<th>throttled</th>" in html and "<td>yes (sw_power_cap)</td>" in html
    md = build_report(run, fmt="md")
    assert "- **throttled**: 1 of 2 timed cases" in md
    stages = collect(run).stages
    seed = stages[stages["config_id"] == SEED.id].set_index("impl")
    assert bool(seed.loc["stage4_overlap", "throttled"]) and not bool(seed.loc["stage3_persistent", "throttled"])


def test_runs_without_gpu_state_show_no_flag(synthetic_run_dir):
    from perfmodel.reports.reporting import build_report

    html = build_report(load_run(synthetic_run_dir), fmt="html")
    assert "<dt>throttled</dt>" not in html and "<th>throttled</th>" not in html


def test_collect_summary_names_throttled_cases(throttled_run, monkeypatch, capsys):
    import collectors.sweep.collect as collect
    from perfmodel.cli import main

    monkeypatch.setattr(collect, "collect", lambda opts: throttled_run)
    assert main(["collect", "--no-ncu"]) == 0
    err = capsys.readouterr().err
    assert err.count("throttled") == 1 and f"stage4_overlap {SEED.id} (sw_power_cap)" in err


def test_collect_summary_says_nothing_when_none_throttled(synthetic_run_dir, monkeypatch, capsys):
    import collectors.sweep.collect as collect
    from perfmodel.cli import main

    monkeypatch.setattr(collect, "collect", lambda opts: synthetic_run_dir)
    main(["collect", "--no-ncu"])
    assert "throttled" not in capsys.readouterr().err


def test_dashboard_stages_page_flags_throttled_cases(throttled_run, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PERFMODEL_RUN_DIRS", str(throttled_run))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "streamlit_app.py"),
                           default_timeout=60).run()
    at.switch_page("app_pages/stages.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("stage4_overlap" in w.value and "throttled" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert "throttled" in table.columns and "yes (sw_power_cap)" in set(table["throttled"])
