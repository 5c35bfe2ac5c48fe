"""`perfmodel collect`: measure every (implementation, config) of a suite into a run folder.

`collect(opts)` runs the sweep in this process (collectors/sweep/local.py: its order, phases and bookkeeping), or,
with `devices` (or resuming a run that was collected with them), in one worker process per GPU of this host that
each run it on a shard of the suite (collectors/sweep/devices.py). What to collect is a `CollectOptions`; the errors a
user can cause are `CollectError`, and Ctrl-C is `Interrupted` (collectors/sweep/options.py).
"""

from __future__ import annotations

from pathlib import Path

from collectors.sweep.devices import collect_on_devices, is_devices_run
from collectors.sweep.local import collect_here
from collectors.sweep.options import CollectOptions


def collect(opts: CollectOptions) -> Path:
    """Run the collection described by `opts`; returns the run folder. With `devices`, or resuming a run that was
    collected with them, one worker process per GPU (collectors/sweep/devices.py)."""
    if opts.devices is not None or (opts.resume and is_devices_run(opts.out_dir)):
        return collect_on_devices(opts)
    return collect_here(opts)
