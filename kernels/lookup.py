"""Any implementation by name: a stage, a peer or a user's kernel (kernels/user_kernels.py), as its `Impl`
(kernels/registry.py); and a stage's kernel pinned to the config a run's report names.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Callable

import kernels
from kernels.registry import Impl, ImplError
from kernels.user_kernels import builtin_names, in_process, spec_of, user_impl


def did_you_mean(name: str, known) -> str:
    """` (did you mean X?)` for the known name closest to a misspelt `name`, else ''."""
    near = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


def get(name: str) -> Impl:
    """The Impl of a stage, peer or user implementation name (ImplError for a name none of them has)."""
    from kernels.peers import PEERS  # imports torch: only when a name is looked up

    if name in kernels.stage_names():
        return kernels.get_stage(name)
    if name in PEERS:
        return PEERS[name]
    found = in_process(name)
    if found is not None:
        return found
    spec = spec_of(name)
    if spec is None:
        raise ImplError(f"unknown implementation {name!r}{did_you_mean(name, builtin_names())}; stages and peers: "
                        f"{', '.join(builtin_names())}; a kernel of your own: --impl NAME=SPEC.")
    return user_impl(name, spec)


def resolve(name: str) -> tuple[Callable, str | None]:
    """(launcher, why it cannot run here or None) of a stage, peer or user implementation name."""
    impl = get(name)
    return impl.launcher, impl.unavailable()


def pinned(name: str, tuned_config: str | None):
    """Within the block, implementation `name` runs the config its `tuned_config` report names instead of tuning
    (`Impl.pinned`); a no-op for an implementation without such configs or a name the registry does not know."""
    try:
        return get(name).pinned(tuned_config)
    except ImplError:
        return contextlib.nullcontext()
