"""The progress line of `perfmodel collect`: `[i/n] label  elapsed  ETA` on stderr (collectors.bench.Progress), or
a caller's callback `progress(done, total, label)`. The count follows the work as it is discovered: the Nsight
Compute session announces its cases when it starts (`Steps.expect`)."""

from __future__ import annotations


class Steps:
    def __init__(self, total: int, callback):
        self.total, self.done, self.callback = total, 0, callback
        self._bar = None
        if callback is None:
            from collectors.bench import Progress

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
