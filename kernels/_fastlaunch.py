"""The Gluon stages' host path, cached: a repeated call launches the compiled kernel straight through Triton's C
launcher, without building its inputs again.

Each call of a Gluon stage through Triton's JIT does, on the host: the input checks, three TMA descriptors
(`TensorDescriptor`, a shared layout each), the tuner lookup, the L2 grouping and SM count, the JIT's argument
binding and specialization over about twenty arguments and its cache-key lookup, the launch metadata, and in the
launcher three `cuTensorMapEncodeTiled` calls (one per descriptor) before `cuLaunchKernelEx`. For a kernel of a
tenth of a millisecond that host path is longer than the kernel.

`LaunchCache` keeps, per input signature, what all of that produced: the compiled kernel's function handle, its
grid, and the launcher's final argument list with the encoded tensor maps. The key is everything the work above
read from the inputs: each input's data pointer, shape, strides, dtype and device, `causal` (and its type: the checks
refuse a non-bool), `sm_scale`, the current device, and what the stage adds (stage 5: its pinned config and the
tuner's generation), so a changed pointer, shape, stride or dtype misses and runs the full path again. A hit only
allocates the output and launches. The output is not in the key: the kernel reads its pointer as a plain argument,
so a fresh output per call is right.

A state is kept only when the fast launch can do exactly what Triton's launcher would: no global or profile
scratch to allocate per launch, and no launch hook installed (a profiler such as Proton sees every launch through
the full path). Anything Triton 3.6 does not expose as expected (the launcher's tensor-descriptor wrapper) leaves
the stage on the full path, which is always correct. The cache holds at most `maxsize` states, least recently used
first out.

A kernel that schedules its work dynamically (stage 5's `dynamic` switch) takes a work counter: one int32 that is
zero when a launch starts, and that the kernel itself sets back to zero at its end (kernels/_gluon.py `next_tile`),
so no launch needs a memset. `WorkCounters` keeps one per (device, stream), each on its own 128-byte line of a
zeroed bank: launches on one stream run in order and find it zero; launches on two streams never share one. A
prepared state looks the counter up for the stream of each call (`LaunchState.counter_at`). Under CUDA-graph
capture a stream new to the bank still gets a slot of the zeroed bank (no allocation, no memset node: the graph's
replays run in stream order and leave it zero); only a first bank cannot be made during a capture, which torch's
own rule (one call before capturing) already avoids.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable


def input_key(q, k, v, causal, sm_scale, *extra) -> tuple | None:
    """What the full host path reads from the inputs (see the module docstring); None for inputs that are not
    tensors (the full path's checks then say what is wrong)."""
    try:
        return (q.data_ptr(), k.data_ptr(), v.data_ptr(), q.shape, k.shape, v.shape, q.stride(), k.stride(),
                v.stride(), q.dtype, k.dtype, v.dtype, q.device, k.device, v.device, causal, type(causal), sm_scale,
                current_device(), *extra)
    except Exception:  # not tensors, or no CUDA device to launch on (the census compiles on CPU tensors)
        return None


def current_device() -> int:
    from triton.runtime import driver

    return driver.active.get_current_device()


@dataclass(frozen=True)
class LaunchState:
    """One prepared launch: `raw` is Triton's C launch function, `head` the arguments before the output pointer,
    `tail` the ones after it (the tensor maps already encoded)."""

    raw: Callable
    grid: tuple[int, int, int]
    function: int
    head: tuple
    tail: tuple
    device_index: int
    out: Callable  # q -> a fresh output tensor
    note: Callable[[], None]  # what a call records besides launching (stage 5: the tuner's last_run)
    tag: Any = None  # what the stage checks a state against (stage 5: the config it was tuned to)
    counters: Any = None  # the WorkCounters of a dynamically scheduled kernel, whose counter is tail[counter_at]
    counter_at: int = -1

    def __call__(self, q):
        o = self.out(q)
        stream = current_stream(self.device_index)
        tail = self.tail
        if self.counter_at >= 0:  # the counter of this call's stream
            i = self.counter_at
            tail = (*tail[:i], self.counters.slot(self.device_index, stream), *tail[i + 1:])
        self.raw(*self.grid, stream, self.function, *self.head, o, *tail)
        self.note()
        return o


class WorkCounters:
    """The work counters of dynamically scheduled kernels: one zeroed int32 per (device index, stream), handed out
    from banks of SLOTS (see the module docstring)."""

    SLOTS = 64
    STRIDE = 32  # int32s between two counters: one 128-byte line each

    def __init__(self) -> None:
        self._slots: dict[tuple[int, int], Any] = {}
        self._banks: dict[int, tuple[Any, int]] = {}  # device index -> (bank, slots handed out)

    def get(self, device):
        """The counter for a launch on `device` from the current stream (a CPU device, as the census compiles on:
        a zero the kernel is compiled against and never launched with)."""
        import torch

        if device.type != "cuda":
            return torch.zeros(1, dtype=torch.int32, device=device)
        index = device.index if device.index is not None else torch.cuda.current_device()
        return self.slot(index, current_stream(index))

    def slot(self, index: int, stream: int):
        counter = self._slots.get((index, stream))
        if counter is None:
            import torch

            bank, used = self._banks.get(index, (None, self.SLOTS))
            if used == self.SLOTS:
                if torch.cuda.is_current_stream_capturing():
                    raise RuntimeError("the dynamic schedule's work counters are made by a call outside CUDA-graph "
                                       "capture; call the kernel once before capturing it.")
                bank, used = torch.zeros(self.SLOTS * self.STRIDE, dtype=torch.int32, device=f"cuda:{index}"), 0
            counter = bank[used * self.STRIDE:used * self.STRIDE + 1]
            self._banks[index] = (bank, used + 1)
            self._slots[(index, stream)] = counter
        return counter


class LaunchCache:
    """Per-stage cache of prepared launches (see the module docstring)."""

    def __init__(self, maxsize: int = 64):
        self.maxsize = maxsize
        self._states: OrderedDict[tuple, LaunchState] = OrderedDict()
        self.hits = self.misses = 0
        self.refused: str | None = None  # why the last launch could not be prepared (None: it was, or none ran)

    def __len__(self) -> int:
        return len(self._states)

    def clear(self) -> None:
        """Forget every state (and the counts)."""
        self._states.clear()
        self.hits = self.misses = 0
        self.refused = None

    def get(self, key: tuple | None) -> LaunchState | None:
        state = None if key is None else self._states.get(key)
        if state is None or _hooks_installed():
            self.misses += 1
            return None
        self._states.move_to_end(key)
        self.hits += 1
        return state

    def put(self, key: tuple | None, state: LaunchState | None) -> None:
        if key is None or state is None:
            return
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.maxsize:
            self._states.popitem(last=False)


def _hooks_installed() -> bool:
    from triton import knobs

    hooks = (knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook)
    return any(h is not None and getattr(h, "calls", True) for h in hooks)


def current_stream(device_index: int) -> int:
    """The raw CUDA stream Triton launches on for `device_index` (the current one: a CUDA-graph capture's too)."""
    from triton.runtime import driver

    return driver.active.get_current_stream(device_index)


def _raw_launch(launcher) -> Callable | None:
    """Triton 3.6's C `launch` beneath its tensor-descriptor wrapper (`wrap_handle_tensordesc`'s `inner`, which
    encodes the tensor maps on every call), or None when the launcher is not built that way."""
    inner = getattr(launcher, "launch", None)
    code = getattr(inner, "__code__", None)
    if code is None or "launcher" not in code.co_freevars or not inner.__closure__:
        return None
    cells = dict(zip(code.co_freevars, (c.cell_contents for c in inner.__closure__)))
    return cells.get("launcher")


def prepare(jit_fn, kernel, grid: tuple, args: tuple, kwargs: dict, o, out: Callable, note: Callable,
            counters: WorkCounters | None = None, counter=None) -> LaunchState | None:
    """The LaunchState that repeats `jit_fn[grid](*args, **kwargs)` (which compiled and launched `kernel`), or
    None when the fast launch could not do exactly what Triton's launcher does. `counter`: the work counter among
    the arguments (from `counters`), looked up again per call for the call's stream."""
    from triton.backends.nvidia.driver import make_tensordesc_arg
    from triton.runtime import driver

    launcher = kernel.run
    raw = _raw_launch(launcher)
    if raw is None or launcher.global_scratch_size or launcher.profile_scratch_size:
        return None
    device = driver.active.get_current_device()
    binder = jit_fn.device_caches[device][4]
    bound, _, _ = binder(*args, **kwargs)
    meta = getattr(kernel.metadata, "tensordesc_meta", None) or []
    expanded: list[Any] = []
    n_desc = 0
    for value, sig in zip(bound.values(), kernel.src.signature.values()):
        if isinstance(sig, str) and sig.startswith("tensordesc"):
            expanded.extend(make_tensordesc_arg(value, meta[n_desc] if n_desc < len(meta) else None))
            n_desc += 1
        else:
            expanded.append(value)
    slots = [i for i, a in enumerate(expanded) if a is o]
    if len(slots) != 1:
        return None
    grid3 = (tuple(grid) + (1, 1))[:3]
    head = (launcher.launch_cooperative_grid, launcher.launch_pdl, None, None, kernel.packed_metadata, None, None,
            None, *expanded[: slots[0]])
    tail = tuple(expanded[slots[0] + 1:])
    counter_at = -1
    if counter is not None:
        at = [i for i, a in enumerate(tail) if a is counter]
        if len(at) != 1 or counters is None:
            return None
        counter_at = at[0]
    return LaunchState(raw=raw, grid=grid3, function=kernel.function, head=head, tail=tail, device_index=device,
                       out=out, note=note, counters=counters, counter_at=counter_at)


def launch_kept(cache: LaunchCache, key: tuple | None, launch: Callable, jit_fn, grid: tuple, args: tuple,
                kwargs: dict, o, out: Callable, note: Callable = lambda: None, tag: Any = None,
                counters: WorkCounters | None = None, counter=None):
    """`launch(jit_fn[grid], *args, **kwargs)` (the stage's full path, e.g. launch_or_refuse bound to its name),
    then the prepared state kept under `key` for the next call. A launch that cannot be prepared is still made;
    only the next call takes the full path again (`cache.refused` says why)."""
    kernel = launch(jit_fn[grid], *args, **kwargs)
    if key is None or kernel is None or cache.maxsize <= 0:  # maxsize 0: the cache is off, every call is full
        return kernel
    try:
        state = prepare(jit_fn, kernel, grid, args, kwargs, o, out, note, counters, counter)
        cache.refused = None if state is not None else "Triton's launcher is not the one this fast path knows"
    except Exception as exc:  # an internal Triton changed shape: the full path stays, which is always right
        state, cache.refused = None, f"{type(exc).__name__}: {exc}"
    if state is not None and tag is not None:
        state = LaunchState(**{**state.__dict__, "tag": tag})
    cache.put(key, state)
    return kernel
