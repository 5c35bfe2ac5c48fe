"""The compiled instruction mix of each case, kept on disk so that reading a run does not compile it again.

Compiling a stage for sm_90 (perfmodel/model/instruction_mix.py) takes about a second per kernel; a report or the
dashboard asks for the same mixes every time it is opened. An `InstructionMix` is a plain record (counts, the
loops' replay nodes, the launch's facts), so it is written once as JSON and read back in milliseconds.

The key names everything the mix depends on: the stage, the config, the SM count the launcher sizes its grid
for, the pinned tuner config, the Triton version that compiled it and the hash of the kernels' sources
(`kernels.source.source_hash()`); a change to any of them is a different entry, never a stale hit.

Two layers are read, in order:

    the user cache   $PERFMODEL_CACHE_DIR, else $XDG_CACHE_HOME/perfmodel, else ~/.cache/perfmodel; under
                     `mixes/`. Written after every compile; atomic writes (runstore.safe_io: a reader sees the
                     old entry or the new, never a part), so two processes compiling the same case both write a
                     whole entry and either wins. An entry that does not parse, or does not hold the key it is
                     filed under, is compiled again and rewritten.
    the shipped mixes  `perfmodel/bundled/mixes/` in the package: the bundled runs' cases, made by
                     `scripts/ship_mixes.py`, so a laptop without Triton shows the model for them. Read when the
                     kernels' source hash matches and the entry's Triton version is the installed one, or Triton
                     is not installed (then the mix is the shipped compile's, and says which Triton made it).

Each kernel's mix (`KernelMix`, the large part: the loops' replay nodes) is filed once under its Triton kernel hash
and shared by the cases that compile to it (configs that differ only in B, H or S).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import fields
from pathlib import Path

from kernels.source import source_hash
from kernels.workload import AttentionConfig

from perfmodel.model.instruction_mix import InstructionMix, KernelMix, LoopMix
from perfmodel.model.instruction_mix import instruction_mix as compiled_mix
from perfmodel.model.sass_mix import kernel_mix as sass_kernel_mix
from runstore.safe_io import atomic_write_text

FORMAT = 3  # bump when the serialized form of InstructionMix changes (2: KernelMix.loops_source, SASS loops; 3: l2_sections, the SASS nodes' stall clocks)


def user_cache_dir() -> Path:
    """Where this user's compiled mixes live (created on first write)."""
    root = os.environ.get("PERFMODEL_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "mixes"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "perfmodel" / "mixes"


def shipped_dir() -> Path:
    return Path(str(importlib.resources.files("perfmodel") / "bundled" / "mixes"))


def triton_version() -> str | None:
    """The installed Triton's version, without importing it (None when it is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("triton")
    except metadata.PackageNotFoundError:
        return None


def case_key(impl: str, config: AttentionConfig, sm_count: int, tuned_config: str | None, loops: str = "ptx") -> dict:
    """What a case's mix is filed under, less the compiler (Triton version) and the kernels' sources."""
    return {"format": FORMAT, "impl": impl, "config": config.as_dict(), "sm_count": int(sm_count),
            "tuned_config": tuned_config or None, "loops": loops}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:24]


# ---- serialization ---------------------------------------------------------------------------------------------

def _tuplify(x):
    return tuple(_tuplify(v) for v in x) if isinstance(x, list) else x


def loop_to_dict(lp) -> dict:
    return {f.name: getattr(lp, f.name) for f in fields(lp)}


def loop_from_dict(d: dict):
    values = dict(d)
    for name in ("wgmma_waits", "bar_threads", "path"):
        values[name] = _tuplify(values[name])
    return LoopMix(**values)


def kernel_to_dict(k) -> dict:
    out = {f.name: getattr(k, f.name) for f in fields(k)}
    out["math_loops"] = [loop_to_dict(lp) for lp in k.math_loops]
    return out


def kernel_from_dict(d: dict):
    values = dict(d)
    values["math_loops"] = tuple(loop_from_dict(lp) for lp in d["math_loops"])
    values["setmaxnreg"] = tuple(values["setmaxnreg"])
    return KernelMix(**values)


def mix_to_dict(mix) -> dict:
    """An InstructionMix as JSON-ready data; its kernel is given by hash (filed separately)."""
    out = {f.name: getattr(mix, f.name) for f in fields(mix) if f.name not in ("config", "kernel")}
    out["config"] = mix.config.as_dict()
    out["kernel_hash"] = mix.kernel.hash
    return out


def mix_from_dict(d: dict, kernel):
    values = {k: v for k, v in d.items() if k != "kernel_hash"}
    values["config"] = AttentionConfig(**d["config"])
    values["iterations"] = tuple(values["iterations"])
    return InstructionMix(kernel=kernel, **values)


# ---- the two layers ----------------------------------------------------------------------------------------------

def _read(path: Path, key: dict) -> dict | None:
    """The entry at `path` when it parses and holds `key`; None when it is absent or damaged (then rebuilt)."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None


_KERNELS: dict[tuple[str, str, str], KernelMix] = {}  # (layer, kernel hash, loops) -> KernelMix read this process


def _kernel_file(root: Path, kernel_hash: str, loops: str) -> tuple[Path, dict]:
    """Where a kernel's mix is filed and the key it holds. One Triton kernel has one mix per place its math loops
    are read (the PTX's, the SASS's: the same kernel hash), so the SASS's is filed apart; the PTX's keeps the name
    it always had."""
    key = {"format": FORMAT, "kernel_hash": kernel_hash}
    if loops == "ptx":
        return root / "kernels" / f"{kernel_hash}.json", key
    return root / "kernels" / f"{kernel_hash}.{loops}.json", {**key, "loops": loops}


def _kernel(root: Path, kernel_hash: str, loops: str = "ptx") -> KernelMix | None:
    if (str(root), kernel_hash, loops) not in _KERNELS:
        path, key = _kernel_file(root, kernel_hash, loops)
        entry = _read(path, key)
        if entry is None:
            return None
        _KERNELS[(str(root), kernel_hash, loops)] = kernel_from_dict(entry["kernel"])
    return _KERNELS[(str(root), kernel_hash, loops)]


def _load(root: Path, key: dict) -> InstructionMix | None:
    case = _read(root / "cases" / f"{_digest(key)}.json", key)
    if case is None:
        return None
    try:
        kernel = _kernel(root, str(case["mix"]["kernel_hash"]), key.get("loops", "ptx"))
        return None if kernel is None else mix_from_dict(case["mix"], kernel)
    except (KeyError, TypeError, ValueError):  # an entry of another shape: compile again
        return None


def store(root: Path, key: dict, mix) -> None:
    """File `mix` under `key` in the layer at `root` (atomic writes; the kernel once per kernel hash)."""
    kernel_path, kernel_key = _kernel_file(root, mix.kernel.hash, key.get("loops", "ptx"))
    if _read(kernel_path, kernel_key) is None:
        kernel_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(kernel_path, json.dumps({"key": kernel_key, "kernel": kernel_to_dict(mix.kernel)},
                                                  separators=(",", ":")))
    case_path = root / "cases" / f"{_digest(key)}.json"
    case_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(case_path, json.dumps({"key": key, "mix": mix_to_dict(mix)}, separators=(",", ":")))


def _full_key(base: dict, triton: str | None, sources: str) -> dict:
    return {**base, "triton": triton, "kernels_source": sources}


def lookup(impl: str, config: AttentionConfig, sm_count: int, tuned_config: str | None, loops: str = "ptx"):
    """The cached mix of a case (user cache, then the shipped mixes), or None: compile it then (`remember`)."""
    base = case_key(impl, config, sm_count, tuned_config, loops)
    sources, triton = source_hash(), triton_version()
    if triton is not None:
        hit = _load(user_cache_dir(), _full_key(base, triton, sources))
        if hit is not None:
            return hit
    shipped = shipped_dir()
    index = _read(shipped / "index.json", {"format": FORMAT})
    for made_with in ([triton] if triton is not None else (index or {}).get("triton", [])):
        hit = _load(shipped, _full_key(base, made_with, sources))
        if hit is not None:
            return hit
    return None


def remember(impl: str, config: AttentionConfig, sm_count: int, tuned_config: str | None, mix: InstructionMix,
             root: Path | None = None, loops: str = "ptx") -> None:
    """File a freshly compiled mix in the user cache (or `root`); a cache that cannot be written is skipped:
    the mix was compiled, only the next process compiles it again."""
    key = _full_key(case_key(impl, config, sm_count, tuned_config, loops), triton_version(), source_hash())
    try:
        store(root or user_cache_dir(), key, mix)
    except OSError:
        pass


# Where the math loops of a mix are read: the PTX Triton emits (the model's, instruction_mix.kernel_mix), or the SASS
# that runs (sass_mix.kernel_mix; `perfmodel model score --loops sass`, issue 25's experiment).
LOOP_READERS = {"ptx": None, "sass": sass_kernel_mix}


def compile_mix(impl: str, config: AttentionConfig, sm_count: int, tuned_config: str | None,
                loops: str = "ptx") -> InstructionMix:
    """The case compiled for sm_90 and read with its math loops from `loops` (LOOP_READERS)."""
    reader = LOOP_READERS[loops]
    if reader is None:
        return compiled_mix(impl, config, sm_count, tuned_config)
    return compiled_mix(impl, config, sm_count, tuned_config, read_kernel=reader)


_MEMO: dict[tuple, InstructionMix] = {}


def instruction_mix(impl: str, config: AttentionConfig, sm_count: int, tuned_config: str | None = None,
                    loops: str = "ptx") -> InstructionMix:
    """perfmodel.model.instruction_mix.instruction_mix through the caches: this process's, the user cache, the shipped
    mixes, else compiled (and filed in the user cache), its math loops read from `loops` ("ptx", the model's; or
    "sass", LOOP_READERS). Raises MixError as the compile does; failures are not cached (a missing Triton is no
    property of the case)."""
    key = (impl, config, int(sm_count), tuned_config or None, loops)
    if key not in _MEMO:
        mix = lookup(impl, config, sm_count, tuned_config, loops)
        if mix is None:
            mix = compile_mix(impl, config, sm_count, tuned_config, loops)
            remember(impl, config, sm_count, tuned_config, mix, loops=loops)
        _MEMO[key] = mix
    return _MEMO[key]
