"""Benchmark one (implementation, config) case: check it against the reference, then time it.

Shared by `perfmodel bench` (which prints a table) and `perfmodel collect` (which writes the run store). The
order is fixed: an output is compared with the float64 reference first, and only a correct implementation is
timed; a wrong one is recorded as `wrong` with its errors and no time, a raising one as `failed` with the reason,
a peer that does not exist here as `unavailable`, and so is an implementation at a config whose dtype it does not
run (fp8 for the SDPA backends, flex, triton_tl and stages 1-4: `Impl.refusal`, its own reason), without calling it.

fp8 (e4m3) inputs are the standard normal values rounded to e4m3; their output is bf16 and their error budget
comes from PyTorch's fp8 math (kernels.reference.attention_fp8_math: the products of the 8-bit values in float32,
P rounded to e4m3) against the float64 math of the same 8-bit values, so the inputs' own quantization is not
counted as an error (kernels.reference.rounding_error).

The reference at large shapes: the float64 scores of one (batch, head) at S = 16k are 2 GiB, so the whole
problem's (B·H of them) would not fit. `check_output` therefore walks the heads in chunks whose float64 score
matrix stays under `chunk_bytes`, computes kernels.reference's float64 reference and PyTorch's low-precision
math on each chunk, and combines the per-chunk maxima, squared norms and rounded-reference sums
(kernels.reference.rounding_error) into the same ErrorReport that kernels.reference.compare returns for the whole
tensor.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

from kernels.reference import ROUNDED_FIGURES, ErrorReport
from kernels.registry import Impl
from kernels.workload import AttentionConfig, torch_dtype

from collectors.timing.failures import case_error, one_line, output_problem
from collectors.timing.measure import CaseTiming, Timing, inputs_for_rotation, l2_bytes, time_case
from collectors.timing.memory import REFERENCE_CHUNK_BYTES, heads_per_chunk
from runstore.schema import columns

# The design document's own correctness gates (seed/einstein-triton-integration.md, "Correctness"):
# torch.allclose(out, ref, rtol=1e-3, atol=2e-3) and max_err <= 0.06.
DOC_RTOL, DOC_ATOL, DOC_MAX_ERR = 1e-3, 2e-3, 0.06


# ---- implementations ------------------------------------------------------------------------------------------
def stage_names() -> list[str]:
    from kernels import stage_names as names

    return names()


def peer_names() -> list[str]:
    from kernels.peers import PEERS

    return list(PEERS)


def resolve(stages: str = "all", refs: str = "all", impls: dict[str, str] | None = None) -> list[Impl]:
    """Implementations (kernels.registry.Impl) named by comma lists (`all`, `none`, or names) plus the user's own
    (`impls`: {name: SPEC}, registered through kernels.user_kernels); unknown names and bad SPECs raise ValueError."""
    from kernels import get_stage, lookup, user_kernels
    from kernels.peers import PEERS

    def pick(text: str | None, known: list[str], what: str) -> list[str]:
        if text is None or text.strip() == "all":  # None: not given
            return list(known)
        if text.strip() == "none":
            return []
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:  # an empty list given is a mistake, never read as "all"
            raise ValueError(f"the {what} list {text!r} names no {what}; give {what} names, all or none.")
        unknown = [n for n in names if n not in known]
        if unknown:
            named = ", ".join(n + lookup.did_you_mean(n, known) for n in unknown)
            raise ValueError(f"unknown {what} {named}; known: {', '.join(known)}, all, none.")
        return [n for n in known if n in names]  # registry order, no duplicates

    out = [get_stage(n) for n in pick(stages, stage_names(), "stage")]
    out += [PEERS[n] for n in pick(refs, list(PEERS), "peer")]
    for name, spec in (impls or {}).items():
        user_kernels.register(name, spec)
        out.append(lookup.get(name))
    return out


# ---- inputs and the reference ---------------------------------------------------------------------------------
def make_input_sets(config: AttentionConfig, n_sets: int, device: str = "cuda", seed: int = 0) -> list[tuple]:
    """`n_sets` independent (q, k, v) sets, standard normal, [B, H, S, D] contiguous, generated on `device` (in
    float32, then rounded to the config's dtype: e4m3 for fp8, whose range of ±448 holds every such value)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    shape = (config.B, config.H, config.S, config.D)
    dtype = torch_dtype(config.dtype)
    return [tuple(torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)
                  for _ in range(3)) for _ in range(n_sets)]


@dataclass(frozen=True)
class Correctness(ErrorReport):
    """An output against the float64 reference (kernels.reference.ErrorReport: errors, budget, within_budget)
    plus the design document's verdicts."""

    doc_allclose: bool

    @property
    def doc_max_err_ok(self) -> bool:
        return self.finite and self.max_abs_err <= DOC_MAX_ERR


def check_output(out, q, k, v, causal: bool, sm_scale: float | None = None,
                 chunk_bytes: int = REFERENCE_CHUNK_BYTES) -> Correctness:
    """Compare `out` with the float64 reference head-chunk by head-chunk (see the module docstring)."""
    import torch

    from kernels.reference import (
        BUDGET_FACTOR, RoundingError, attention_lowp_math, attention_reference, budget_floor, rounding_error,
    )

    B, H, S, _ = q.shape
    per_chunk = heads_per_chunk(H, S, chunk_bytes)
    max_abs = ref_max = torch_err = 0.0
    sq_diff = sq_ref = 0.0
    finite, allclose = True, True
    rounding = RoundingError()
    for b in range(B):
        for h0 in range(0, H, per_chunk):
            sl = (slice(b, b + 1), slice(h0, min(H, h0 + per_chunk)))
            qc, kc, vc, oc = q[sl], k[sl], v[sl], out[sl]
            ref = attention_reference(qc, kc, vc, causal, sm_scale)
            lowp = attention_lowp_math(qc, kc, vc, causal, sm_scale)
            torch_err = max(torch_err, (lowp.to(torch.float64) - ref).abs().max().item())
            del lowp
            rounding += rounding_error(oc, ref, q.dtype)
            if not bool(torch.isfinite(oc).all().item()):
                finite = False
                continue
            diff = oc.to(torch.float64) - ref
            max_abs = max(max_abs, diff.abs().max().item())
            ref_max = max(ref_max, ref.abs().max().item())
            sq_diff += diff.square().sum().item()
            sq_ref += ref.square().sum().item()
            allclose = allclose and bool(torch.allclose(oc.to(torch.float64), ref, rtol=DOC_RTOL, atol=DOC_ATOL))
            del ref, diff
    budget = BUDGET_FACTOR * max(torch_err, budget_floor(q.dtype))
    if not finite:
        return Correctness(math.inf, math.inf, math.inf, budget, False, False, **rounding.figures())
    return Correctness(
        max_abs_err=max_abs, max_rel_err=max_abs / (ref_max or 1.0),
        rel_l2_err=math.sqrt(sq_diff) / (math.sqrt(sq_ref) or 1.0),
        budget_abs_err=budget, finite=True, doc_allclose=allclose, **rounding.figures(),
    )


# ---- one case -------------------------------------------------------------------------------------------------
@dataclass
class CaseResult:
    """Everything measured for one (implementation, config)."""

    impl: str
    config: AttentionConfig
    status: str  # ok | failed | wrong | unavailable
    error: str = ""
    correctness: Correctness | None = None
    timing: Timing | None = None  # the primary time: the GPU's (CUDA graph), else the host loop's (times says)
    times: CaseTiming | None = None  # every time measured: GPU, host loop, host launch
    tuned_config: str = ""
    tuner: dict = field(default_factory=dict)  # the tuner's re-timing of its choice (`tuner_fidelity_of`), or {}
    n_inputs: int = 0  # input sets the timing rotated over
    extra: dict = field(default_factory=dict)

    @property
    def tflops(self) -> float:
        return self.config.tflops_at(self.timing.median_ms) if self.timing else math.nan

    def _key(self, run_id: str) -> dict:
        return {"run_id": run_id, "impl": self.impl, "config_id": self.config.id, **self.config.as_dict()}

    def correctness_row(self, run_id: str = "") -> dict:
        """A row of the `correctness` table."""
        c = self.correctness
        row = self._key(run_id)
        row.update(status=self.status, error=self.error)
        nan = math.nan
        row.update(
            max_abs_err=c.max_abs_err if c else nan, max_rel_err=c.max_rel_err if c else nan,
            rel_l2_err=c.rel_l2_err if c else nan, budget_abs_err=c.budget_abs_err if c else nan,
            **{col: getattr(c, col) if c else nan for col in ROUNDED_FIGURES},
            within_budget=c.within_budget if c else None, doc_allclose=c.doc_allclose if c else None,
            doc_max_err_ok=c.doc_max_err_ok if c else None,
        )
        return {k: row.get(k) for k in columns("correctness")}

    def timing_row(self, run_id: str = "", bare_time_ms: float = math.nan) -> dict:
        """A row of the `timings` table."""
        row = self._key(run_id)
        row.update(status=self.status, error=self.error, tuned_config=self.tuned_config, bare_time_ms=bare_time_ms,
                   n_inputs=self.n_inputs or None, **self.tuner)
        if self.timing and bare_time_ms == bare_time_ms and bare_time_ms > 0:  # NaN-safe
            # the collector's own overhead: its host loop against a bare do_bench, both timed from Python
            loop = self.times.host_loop if self.times is not None else self.timing
            row["overhead_pct"] = (loop.median_ms - bare_time_ms) / bare_time_ms * 100.0
        if self.timing:
            row.update(self.timing.as_dict(), tflops=self.tflops)
            if self.times is not None:
                row.update(self.times.as_dict())
        else:
            row.update(time_ms=math.nan, time_ms_p20=math.nan, time_ms_p80=math.nan, spread_pct=math.nan,
                       stable=None, n_reps=0, tflops=math.nan, time_ms_ci_low=math.nan, time_ms_ci_high=math.nan,
                       ci_width_pct=math.nan, wide_ci=None, host_loop_ms=math.nan, host_loop_ms_ci_low=math.nan,
                       host_loop_ms_ci_high=math.nan, host_launch_us=math.nan)
        return {k: row.get(k) for k in columns("timings")}

    def sample_rows(self, run_id: str = "") -> list[dict]:
        """Rows of the `timing_samples` table: every timed repetition (none when the case was not timed)."""
        return self.timing.sample_rows(self._key(run_id)) if self.timing else []


def tuned_config_of(impl: Impl) -> str:
    """The config an autotuning stage chose for its last call, when its module reports one (`chosen_config()`)."""
    report = getattr(impl.module(), "chosen_config", None)
    if not callable(report):
        return ""
    chosen = report()
    return "" if chosen is None else str(chosen)


def tuner_fidelity_of(impl: Impl) -> dict:
    """The re-timing figures of the config a tuning stage chose for its last call (its module's TUNER.fidelity():
    the `tuner_*` columns of the timings table), {} for an implementation without them or a call not tuned."""
    tuner = getattr(impl.module(), "TUNER", None)
    fidelity = getattr(tuner, "fidelity", None)
    return dict(fidelity()) if callable(fidelity) else {}


def bench_case(impl: Impl, config: AttentionConfig, *, warmup_ms: float = 25, rep_ms: float = 100,
               time_it: bool = True, seed: int = 0, keep_inputs: bool = False) -> CaseResult:
    """Check `impl` at `config` against the reference, then (if correct and `time_it`) time it on rotated inputs.

    Never raises for a problem of the implementation: it becomes the result's status and error.
    With `keep_inputs`, the input sets and the first output are left in `result.extra` for further measurements
    (launch cost, determinism) by the caller.
    """
    import torch

    ok, reason = impl.available()
    if not ok:
        return CaseResult(impl.name, config, "unavailable", reason)
    if refused := impl.refusal(config):  # a dtype it does not run: not run, with its own reason
        return CaseResult(impl.name, config, "unavailable", refused)
    n_sets = inputs_for_rotation(config, l2_bytes()) if time_it else 1
    sets = make_input_sets(config, n_sets, seed=seed)
    q, k, v = sets[0]
    try:
        out = impl.launcher(q, k, v, causal=config.causal)
        torch.cuda.synchronize()
    except Exception as exc:  # the implementation failed: record why, go on with the sweep
        return CaseResult(impl.name, config, "failed", case_error(impl.name, exc))
    problem = output_problem(impl.name, out, q)  # None, a tuple, another shape or dtype: failed, in one sentence
    if problem:
        return CaseResult(impl.name, config, "failed", problem)
    correctness = check_output(out, q, k, v, config.causal)
    result = CaseResult(impl.name, config, "ok", correctness=correctness, tuned_config=tuned_config_of(impl),
                        tuner=tuner_fidelity_of(impl))
    if not correctness.within_budget:
        result.status = "wrong"
        result.error = (f"max abs error {correctness.max_abs_err:.3g} exceeds the budget "
                        f"{correctness.budget_abs_err:.3g}; not timed")
        return result
    if keep_inputs:
        result.extra.update(sets=sets, out=out)
    if time_it:
        causal = config.causal
        result.n_inputs = n_sets
        try:
            result.times = time_case(lambda i: impl.launcher(*sets[i], causal=causal), n_sets, warmup_ms, rep_ms)
            result.timing = result.times.gpu
        except Exception as exc:
            result.status, result.error = "failed", f"timing failed: {one_line(exc)}"
        result.tuned_config = tuned_config_of(impl) or result.tuned_config
    return result


# ---- progress -------------------------------------------------------------------------------------------------
class Progress:
    """`[i/n] label  elapsed  ETA` on stderr (rewritten in place on a terminal, one line per step otherwise)."""

    def __init__(self, total: int, stream=None):
        self.total, self.done = max(1, total), 0
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, label: str) -> None:
        """Announce that work on `label` starts (the ETA comes from the finished steps' average)."""
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * max(0, self.total - self.done) if self.done else math.nan
        eta_text = "--:--" if math.isnan(eta) else _mmss(eta)
        line = f"[{self.done + 1}/{self.total}] {label}  elapsed {_mmss(elapsed)}  ETA {eta_text}"
        if self.tty:
            self.stream.write("\r\033[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.done += 1

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.write(f"done: {self.done} cases in {_mmss(time.monotonic() - self.start)}\n")
        self.stream.flush()


def _mmss(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def environment() -> dict:
    """GPU name and library versions, for every row of a benchmark table."""
    import datetime

    import torch
    import triton

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "gpu": gpu, "torch": torch.__version__, "triton": triton.__version__,
        "cudnn": str(cudnn) if cudnn else "", "cuda": torch.version.cuda or "",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


# ---- the bench table ------------------------------------------------------------------------------------------
BENCH_COLUMNS = [
    "gpu", "torch", "triton", "cudnn", "cuda", "date",
    "impl", "kind", "config_id", "B", "H", "S", "D", "causal", "dtype", "status",
    "time_ms", "time_ms_p20", "time_ms_p80", "spread_pct", "stable", "n_reps", "time_ms_ci_low", "time_ms_ci_high",
    "ci_width_pct", "wide_ci", "timing_method", "graph_calls", "graph_fallback", "host_loop_ms", "host_loop_ms_ci_low",
    "host_loop_ms_ci_high", "host_launch_us", "host_bound", "tflops", "vs_cudnn", "vs_cudnn_ci_low", "vs_cudnn_ci_high",
    "max_abs_err", "budget_abs_err", "max_ulp", "exact_frac", "rms_ulp", "doc_allclose", "tuned_config",
    "tuner_warm_ms", "tuner_rotated_ms", "tuner_retimed", "tuner_warm_pick", "tuner_warm_pick_rotated_ms", "error",
]
BASELINE = "sdpa_cudnn"  # the FA3-class peer every ratio is taken against (ANCHORS.md: FA3 is not installable)


def bench_table(results: list[CaseResult], env: dict, kinds: dict[str, str] | None = None):
    """One row per case with the environment on every row (Liger-Kernel style) and `vs_cudnn`, the case's
    TFLOP/s over SDPA cuDNN's at the same config measured in the same process (NaN when cuDNN was not timed), with
    its bootstrap 95% interval from both cases' samples (`vs_cudnn_ci_low/high`; NaN unless both were timed by one
    method: a GPU time against a host loop's is no ratio of kernels)."""
    import pandas as pd

    from collectors.timing.stats import ratio_gain_ci

    kinds = kinds or {}
    rows = []
    for r in results:
        row = {k: env.get(k, "") for k in ("gpu", "torch", "triton", "cudnn", "cuda", "date")}
        row.update(r.timing_row())
        row.pop("run_id", None)
        row["kind"] = kinds.get(r.impl, "")
        c = r.correctness
        row.update({col: getattr(c, col) if c else math.nan
                    for col in ("max_abs_err", "budget_abs_err", *ROUNDED_FIGURES)},
                   doc_allclose=c.doc_allclose if c else None)
        rows.append(row)
    derived = ("vs_cudnn", "vs_cudnn_ci_low", "vs_cudnn_ci_high")
    frame = pd.DataFrame(rows, columns=[c for c in BENCH_COLUMNS if c not in derived])
    base = frame[(frame["impl"] == BASELINE) & (frame["status"] == "ok")].set_index("config_id")["tflops"]
    frame["vs_cudnn"] = frame["tflops"] / frame["config_id"].map(base)
    cudnn = {r.config.id: r.timing for r in results if r.impl == BASELINE and r.status == "ok" and r.timing}
    lows, highs = [], []
    for r in results:
        ref = cudnn.get(r.config.id)
        if r.status == "ok" and r.timing and ref is not None and ref.method == r.timing.method:
            _, low, high = ratio_gain_ci(ref.samples_ms, r.timing.samples_ms)  # t_cudnn / t_impl - 1
            lows.append(1.0 + low)
            highs.append(1.0 + high)
        else:
            lows.append(math.nan)
            highs.append(math.nan)
    frame["vs_cudnn_ci_low"], frame["vs_cudnn_ci_high"] = lows, highs
    return frame[BENCH_COLUMNS]
