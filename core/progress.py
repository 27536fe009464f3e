"""Progress reporting that works the same from the CLI (tqdm) and the dashboard.

Engine functions take `progress: ProgressFn | None` and call it as
`progress(stage, done, total)`; adapters turn that into bars.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

ProgressFn = Callable[[str, int, int], None]
T = TypeVar("T")


def track(items: Iterable[T], stage: str, total: int, progress: ProgressFn | None) -> Iterator[T]:
    """Yield `items`, reporting `stage` progress after each one."""
    if progress is not None:
        progress(stage, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        if progress is not None:
            progress(stage, done, total)


class TqdmProgress:
    """A ProgressFn that keeps one tqdm bar per stage (for the command line)."""

    def __init__(self, unit: str = "it") -> None:
        self._bars: dict = {}
        self._unit = unit

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = self._bars[stage] = tqdm(total=total, initial=done, desc=stage, unit=self._unit, dynamic_ncols=True)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
