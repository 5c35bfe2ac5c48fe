"""perfmodel: measure Triton flash-attention kernels on an H100 and hold the "Einstein inversion" plan to the data.

Packages by data flow (README.md, "Layout"): `kernels` (the Triton stages and their peers) -> `collectors`
(measurement, and the sweep of `perfmodel collect`) -> `runstore` (the run folders) -> `perfmodel` (the plan, the
model, the reports, the CLI) -> `app` (the dashboard).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("perfmodel")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"


__all__ = ["collect", "load_run", "report", "__version__"]


def __getattr__(name: str):
    # the Python API (perfmodel/api.py), imported on first use so that `import perfmodel` stays light
    if name in ("collect", "load_run", "report"):
        from perfmodel import api

        return getattr(api, name)
    raise AttributeError(f"module 'perfmodel' has no attribute {name!r}")
