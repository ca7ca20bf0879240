"""Latency samples and their percentiles, in one place for every measurement."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np


def percentile_ms(seconds: Iterable[float], q: float) -> float:
    """The q-th percentile of durations given in seconds, in milliseconds (nan when empty)."""
    values = np.asarray(list(seconds) if not isinstance(seconds, np.ndarray) else seconds)
    return float(np.percentile(values, q) * 1e3) if values.size else float("nan")


@dataclass
class Samples:
    """Durations in seconds; summaries in the unit asked for."""

    seconds: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.seconds.append(value)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.seconds, q)) if self.seconds else float("nan")

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)

    def summary(self, scale: float = 1e3) -> dict:
        """n, p50, p99 and min, scaled (1e3: milliseconds, 1e6: microseconds)."""
        return {"n": len(self.seconds), "p50": self.p50 * scale, "p99": self.p99 * scale,
                "min": min(self.seconds) * scale if self.seconds else float("nan")}


def repeat(fn: Callable[[], object], n: int, warmup: int = 3,
           budget: float | None = None) -> Samples:
    """Run fn n times (after a warmup), or until `budget` seconds have passed (at least 5)."""
    for _ in range(warmup):
        fn()
    samples = Samples()
    deadline = None if budget is None else time.perf_counter() + budget
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.add(time.perf_counter() - start)
        if deadline is not None and time.perf_counter() > deadline and len(samples.seconds) >= 5:
            break
    return samples


def over(fn: Callable[[object], object], inputs: list, warmup: int = 20) -> Samples:
    """One timed call of fn per input (the spread a service sees over different requests),
    after `warmup` untimed calls on the first inputs."""
    for x in inputs[:warmup]:
        fn(x)
    samples = Samples()
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        samples.add(time.perf_counter() - start)
    return samples


def interleaved(fns: Mapping[str, Callable[[], object]], n: int, rounds: int = 10,
                warmup: int = 3) -> dict[str, Samples]:
    """`repeat` for several fns that are to be compared: each runs n times in all, in `rounds`
    turns, the fns taking turns within every round (`interleaved_over` with no inputs). On a
    shared machine a slow minute then falls on every fn alike, and their ratios hold."""
    return interleaved_over({label: (lambda _, fn=fn: fn()) for label, fn in fns.items()},
                            [None] * n, rounds, warmup)


def interleaved_over(fns: Mapping[str, Callable[[object], object]], inputs: list,
                     rounds: int = 10, warmup: int = 20) -> dict[str, Samples]:
    """`over` for several fns: the inputs in `rounds` slices, every fn taking each slice in
    turn (one timed call per input and fn)."""
    for fn in fns.values():
        for x in inputs[:warmup]:
            fn(x)
    out = {label: Samples() for label in fns}
    size = -(-len(inputs) // rounds) if inputs else 1
    for first in range(0, len(inputs), size):
        for label, fn in fns.items():
            samples = out[label]
            for x in inputs[first:first + size]:
                start = time.perf_counter()
                fn(x)
                samples.add(time.perf_counter() - start)
    return out
