"""The GPU's state while the timings run: SM and memory clocks, power, temperature and clock-event reasons.

`GpuStateSampler` reads them in a background thread every `interval_s` seconds, from NVML through `pynvml`
(nvidia-ml-py) when it can be initialised, else from `nvidia-smi --query-gpu=...`. A field that cannot be read is
None ("not measured"), never a guess, and one failing field does not lose the others: `missing` says why each
unread field is missing. `case_state(t0, t1)` summarises one case's window for its `timings` row (the columns
are documented in runstore/schema.py); `summary()` is run.json's `clocks_during_timing`.

Clock-event reasons are NVML's bitmask (`nvmlClocksEventReason*`, formerly `nvmlClocksThrottleReason*`; the bit
values are nvidia-ml-py's pynvml.py, the same under both names). Of them, GPU idle, an applications-clocks
setting and a display-clock setting say why clocks are where someone or nothing asked them to be, not that the
GPU held them down: they are named in run.json but do not make a case `throttled`.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from typing import NamedTuple

# bit -> (short name, counts as throttling). nvidia-ml-py 13.615 pynvml.py, "Clock Event Reasons defines";
# board_limit and reliability exist only under the older ClocksThrottleReason names.
REASON_BITS: dict[int, tuple[str, bool]] = {
    0x001: ("gpu_idle", False),
    0x002: ("applications_clocks_setting", False),
    0x004: ("sw_power_cap", True),
    0x008: ("hw_slowdown", True),
    0x010: ("sync_boost", True),  # held to the slowest GPU of a sync-boost group: this GPU runs below its clocks
    0x020: ("sw_thermal", True),
    0x040: ("hw_thermal", True),
    0x080: ("hw_power_brake", True),
    0x100: ("display_clock_setting", False),
    0x200: ("board_limit", True),
    0x400: ("reliability", True),
}
THROTTLE_REASONS = tuple(name for name, counts in REASON_BITS.values() if counts)

FIELDS = ("sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c", "clock_event_reasons")
# nvidia-smi's --query-gpu names per field, newest first (clocks_event_reasons replaced clocks_throttle_reasons
# in newer drivers; an unknown name fails the whole query, so each is probed alone first)
SMI_FIELDS: dict[str, tuple[str, ...]] = {
    "sm_clock_mhz": ("clocks.sm",), "mem_clock_mhz": ("clocks.mem",), "power_w": ("power.draw",),
    "temperature_c": ("temperature.gpu",),
    "clock_event_reasons": ("clocks_event_reasons.active", "clocks_throttle_reasons.active"),
}


class GpuSample(NamedTuple):
    t: float  # time.monotonic() seconds
    sm_clock_mhz: float | None
    mem_clock_mhz: float | None
    power_w: float | None
    temperature_c: float | None
    clock_event_reasons: int | None  # the bitmask


def reason_names(mask: int, throttling_only: bool = False) -> list[str]:
    """Short names of the bits set in `mask`, in bit order; an unknown bit is named `bit_0x...` and never counts
    as throttling."""
    names = []
    bit = 1
    while bit <= mask:
        if mask & bit:
            name, counts = REASON_BITS.get(bit, (f"bit_{bit:#x}", False))
            if counts or not throttling_only:
                names.append(name)
        bit <<= 1
    return names


def _union(masks: list[int], throttling_only: bool) -> list[str]:
    seen = 0
    for m in masks:
        seen |= m
    return reason_names(seen, throttling_only)


def case_state(samples: list[GpuSample]) -> dict:
    """One case's `timings` columns from the samples taken while it ran: median clocks and power, the highest
    temperature, the throttling reasons seen (comma-separated, "" when none) and `throttled`; None for each
    field no sample could read."""
    def values(field):
        return [getattr(s, field) for s in samples if getattr(s, field) is not None]

    def median(field):
        v = values(field)
        return statistics.median(v) if v else None

    temps, masks = values("temperature_c"), values("clock_event_reasons")
    reasons = _union(masks, throttling_only=True) if masks else None
    return {"sm_clock_mhz": median("sm_clock_mhz"), "mem_clock_mhz": median("mem_clock_mhz"),
            "power_w": median("power_w"), "temperature_c": max(temps) if temps else None,
            "throttle_reasons": ",".join(reasons) if reasons is not None else None,
            "throttled": bool(reasons) if reasons is not None else None}


# ---- readers: () -> dict of FIELDS (None where unread); `missing` is filled with the reason per field ---------
def _nvml_reader(missing: dict):
    """A reader over NVML, or (None, why NVML cannot be used)."""
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None, "pynvml is not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception as exc:
        return None, f"NVML failed: {type(exc).__name__}: {exc}"
    uuid = smi_device()
    if uuid:
        try:
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        except Exception:
            pass
    calls = {
        "sm_clock_mhz": [lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))],
        "mem_clock_mhz": [lambda: float(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM))],
        "power_w": [lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0],  # NVML gives mW
        "temperature_c": [lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))],
        # the newer name first; an older driver lacks its C symbol (NVMLError FunctionNotFound)
        "clock_event_reasons": [lambda fn=getattr(pynvml, name): int(fn(handle)) for name in
                                ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
                                if hasattr(pynvml, name)],
    }
    chosen = {}
    for field, candidates in calls.items():
        errors = []
        for call in candidates:
            try:
                call()
            except Exception as exc:
                errors.append(f"NVML: {type(exc).__name__}: {exc}")
                continue
            chosen[field] = call
            break
        else:
            missing[field] = "; ".join(errors) or "this pynvml has no function for it"
    if not chosen:
        return None, "NVML could read no field (" + "; ".join(f"{k}: {v}" for k, v in missing.items()) + ")"

    def read() -> dict:
        out = {}
        for field in FIELDS:
            call = chosen.get(field)
            try:
                out[field] = call() if call is not None else None
            except Exception as exc:
                out[field] = None
                missing.setdefault(field, f"NVML: {type(exc).__name__}: {exc} (on some samples)")
        return out

    return read, None


def _smi_value(field: str, text: str):
    text = text.strip()
    if not text or text.startswith("[") or text.upper() in ("N/A", "NOT SUPPORTED"):
        return None
    try:
        return int(text, 0) if field == "clock_event_reasons" else float(text)
    except ValueError:
        return None


def nvidia_smi_query(fields: str, device: str | None) -> tuple[list[str] | None, str]:
    """The values `nvidia-smi --query-gpu=FIELDS` gives for `device` (None: the first GPU), or (None, why not)."""
    if shutil.which("nvidia-smi") is None:
        return None, "nvidia-smi is not installed"
    cmd = ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"]
    if device is not None:
        cmd += ["-i", device]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        rc, out = done.returncode, done.stdout.strip() or done.stderr.strip()
    except (OSError, subprocess.SubprocessError) as e:
        rc, out = -1, str(e)
    if rc != 0 or not out:
        return None, f"nvidia-smi failed: {out[:200]}"
    return [x.strip() for x in out.splitlines()[0].split(",")], ""


def smi_device() -> str | None:
    """nvidia-smi's id for torch's current device: its UUID when torch tells it, else None (first GPU)."""
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(torch.cuda.current_device()).uuid)
        return uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
    except Exception:
        return None


def _smi_probe(device: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """({field: the nvidia-smi name it answers to}, {field: why none did}) for one device id."""
    names, why = {}, {}
    for field, candidates in SMI_FIELDS.items():
        errors = []
        for name in candidates:
            row, w = nvidia_smi_query(name, device)
            if row is not None:
                names[field] = name
                break
            errors.append(w)
        else:
            why[field] = errors[-1]
    return names, why


def _smi_reader(missing: dict):
    """(reader over `nvidia-smi --query-gpu`, None, source), or (None, why not, None)."""
    device = smi_device()
    names, why = _smi_probe(device)
    if not names and device is not None:
        device = None
        names, why = _smi_probe(None)
    if not names:
        return None, next(iter(why.values()), "nvidia-smi answered nothing"), None
    missing.update(why)
    query = ",".join(names.values())

    def read() -> dict:
        values, why = nvidia_smi_query(query, device)
        if values is None or len(values) != len(names):
            raise RuntimeError(why or "nvidia-smi gave the wrong number of fields")
        out = dict.fromkeys(FIELDS)
        for field, text in zip(names, values):
            out[field] = _smi_value(field, text)
            if out[field] is None:
                missing.setdefault(field, f"nvidia-smi gave {text!r} for {names[field]} (on some samples)")
        return out

    return read, None, f"nvidia-smi --query-gpu={query}"


class GpuStateSampler:
    """Samples GpuSample rows in a background thread; use as a context manager around the timed part of a run.
    `available` is False (and `reason` says why) when neither NVML nor nvidia-smi can be read."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.samples: list[GpuSample] = []
        self.source: str | None = None
        self.reason: str | None = None
        self.nvml_reason: str | None = None  # why NVML was not used, when nvidia-smi was
        self.missing: dict[str, str] = {}
        self.n_cases = self.n_cases_throttled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = self._pick_reader()

    @property
    def available(self) -> bool:
        return self._read is not None

    def _pick_reader(self):
        read, self.nvml_reason = _nvml_reader(self.missing)
        if read is not None:
            self.source = "nvml"
            return read
        self.missing.clear()
        read, smi_why, self.source = _smi_reader(self.missing)
        if read is None:
            self.reason = f"no GPU state source: {self.nvml_reason}, and {smi_why}"
        return read

    def sample(self) -> GpuSample | None:
        """One reading now (also what the thread does), None when no field could be read."""
        try:
            got = self._read()
        except Exception:
            return None
        if all(v is None for v in got.values()):
            return None
        s = GpuSample(time.monotonic(), **got)
        self.samples.append(s)
        return s

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def start(self) -> "GpuStateSampler":
        if self._read is not None and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gpu-state-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "GpuStateSampler":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def window(self, t0: float | None = None, t1: float | None = None) -> list[GpuSample]:
        return [s for s in self.samples if (t0 is None or s.t >= t0) and (t1 is None or s.t <= t1)]

    def case_state(self, t0: float | None = None, t1: float | None = None) -> dict:
        """The `timings` GPU-state columns over [t0, t1] (monotonic seconds); counted for run.json's summary."""
        state = case_state(self.window(t0, t1))
        self.n_cases += 1
        self.n_cases_throttled += bool(state["throttled"])
        return state

    def summary(self) -> dict:
        """For run.json: source, sample count, min / median / max of clocks and power, the highest temperature,
        the clock-event reasons seen (all, and those that throttle), how many cases were timed while throttled;
        `missing` gives the reason for each field never read."""
        base = {"source": self.source, "n_samples": len(self.samples)}
        if self.nvml_reason and self.source:
            base["nvml_reason"] = self.nvml_reason
        if not self.samples:
            return {**base, "reason": self.reason or "no samples were taken (nothing was timed)"}
        out = {**base, "interval_s": self.interval_s}
        for field in ("sm_clock_mhz", "mem_clock_mhz", "power_w"):
            v = [getattr(s, field) for s in self.samples if getattr(s, field) is not None]
            out[field] = {"min": min(v), "median": statistics.median(v), "max": max(v)} if v else None
        temps = [s.temperature_c for s in self.samples if s.temperature_c is not None]
        out["temperature_c"] = {"max": max(temps)} if temps else None
        masks = [s.clock_event_reasons for s in self.samples if s.clock_event_reasons is not None]
        out["clock_event_reasons_seen"] = _union(masks, throttling_only=False) if masks else None
        out["throttle_reasons_seen"] = _union(masks, throttling_only=True) if masks else None
        out["n_cases"], out["n_cases_throttled"] = self.n_cases, self.n_cases_throttled
        if self.missing:
            out["missing"] = dict(self.missing)
        return out
