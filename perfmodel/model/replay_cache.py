"""The partition replays of the model (perfmodel/model/critical_path.py `partition_seconds`), kept on disk beside the
compiled mixes, so that a report does not replay the same warps again every time it is opened.

A replay is a pure function of its streams (the loops' replay nodes and their barrier groups), the latencies it
charges, and the code of the replay and of the latencies. The latencies hold one function (the wgmma group's time,
perfmodel/model/predictive.py `latencies`), which has no stable text of its own: the caller names what it was made
from (`made_from`: the GPU figures and micro-benchmarks). The key is a SHA-256 of the streams, the latencies' numbers
and `made_from` as written (`repr`, exact for the ints, floats, strings and tuples they hold) and of the source text
of critical_path.py and predictive.py, so an edit to either is a different entry, never a stale hit (unlike the model's MODEL_VERSION, which names what a prediction
means, this names the code that computed it). Entries live in the user cache (perfmodel/model/mix_cache.py
`user_cache_dir`, under `replays/`), written atomically; one that does not parse or holds another key is replayed
again and rewritten. A cache that cannot be written (read-only home) only costs the replay.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import fields
from functools import lru_cache
from pathlib import Path

from perfmodel.model import critical_path
from perfmodel.model.critical_path import Latencies
from perfmodel.model.mix_cache import user_cache_dir
from runstore.safe_io import atomic_write_text

FORMAT = 1


_CODE = ("critical_path.py", "predictive.py")  # the replay, and the latencies it is handed


@lru_cache(maxsize=1)
def _replay_source() -> str:
    here = Path(critical_path.__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in _CODE)).hexdigest()[:16]


def replay_key(streams: list[tuple], lat: Latencies, made_from: tuple) -> str:
    numbers = tuple((f.name, getattr(lat, f.name)) for f in fields(lat) if not callable(getattr(lat, f.name)))
    text = repr((FORMAT, _replay_source(), streams, numbers, made_from))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _root() -> Path:
    return user_cache_dir().parent / "replays"


def _read(path: Path, key: str) -> float | None:
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    value = entry.get("seconds")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def partition_seconds(streams: list[tuple], lat: Latencies, made_from: tuple) -> float:
    """critical_path.partition_seconds(streams, lat), read from the cache when an entry holds it; `made_from`: what
    `lat`'s function was made from (see the module's docstring)."""
    key = replay_key(streams, lat, made_from)
    path = _root() / f"{key}.json"
    found = _read(path, key)
    if found is not None:
        return found
    seconds = critical_path.partition_seconds(streams, lat)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"key": key, "seconds": seconds}))
    except OSError:
        pass  # nowhere to keep it: the replay is computed again next time
    return seconds
