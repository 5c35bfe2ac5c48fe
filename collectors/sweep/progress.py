"""The progress line of `perfmodel collect`: `[i/n] label  elapsed  ETA` on stderr (collectors.timing.bench.Progress),
or a caller's callback `progress(done, total, label)`. The count follows the work as it is discovered: the Nsight
Compute session announces its cases when it starts (`Steps.expect`)."""

from __future__ import annotations


class Steps:
    def __init__(self, total: int, callback):
        self.total, self.done, self.callback = total, 0, callback
        self._bar = None
        if callback is None:
            from collectors.timing.bench import Progress

            self._bar = Progress(total)

    def expect(self, remaining: int) -> None:
        """From now on `remaining` more steps are expected (the ETA and the count follow)."""
        self.total = self.done + max(0, remaining)
        if self._bar is not None:
            self._bar.total = max(1, self.total)

    def step(self, label: str) -> None:
        if self.done >= self.total:
            self.total = self.done + 1
            if self._bar is not None:
                self._bar.total = self.total
        if self._bar is not None:
            self._bar.step(label)
        else:
            self.callback(self.done, self.total, label)
        self.done += 1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Aggregate:
    """One progress line over several workers (`perfmodel collect --devices`): each worker writes its latest step
    as JSON ({"done", "total", "label"}) to its own file; `update()` adds them up and prints
    `[done/total] gpu0: label | gpu1: label  elapsed  ETA` on stderr when the sum moved (or calls
    `callback(done, total, label)`). The ETA is the elapsed time per finished step times the steps left."""

    def __init__(self, files, names, callback=None, stream=None):
        import sys
        import time

        self.files, self.names, self.callback = list(files), list(names), callback
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start, self._last = time.monotonic(), None

    def _read(self) -> list[dict]:
        import json

        out = []
        for f in self.files:
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                out.append({"done": 0, "total": 0, "label": "starting"})
        return out

    def update(self) -> None:
        import math
        import time

        from collectors.timing.bench import _mmss

        states = self._read()
        done = sum(int(s.get("done", 0)) for s in states)
        total = max(done, sum(int(s.get("total", 0)) for s in states))
        label = " | ".join(f"{n}: {s.get('label', '')}" for n, s in zip(self.names, states))
        if (done, total, label) == self._last:
            return
        self._last = (done, total, label)
        if self.callback is not None:
            self.callback(done, total, label)
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * max(0, total - done) if done else math.nan
        line = (f"[{done}/{total}] {label}  elapsed {_mmss(elapsed)}  "
                f"ETA {'--:--' if math.isnan(eta) else _mmss(eta)}")
        self.stream.write(("\r\033[K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        import time

        from collectors.timing.bench import _mmss

        if self.callback is None:
            self.stream.write(("\n" if self.tty else "") + f"done: {self._last[1] if self._last else 0} steps on "
                              f"{len(self.files)} GPU(s) in {_mmss(time.monotonic() - self.start)}\n")
            self.stream.flush()
