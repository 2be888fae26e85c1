"""Benchmarks (not tests): each measures a throughput against its limit, side by side in one run.

A benchmark is a function registered with ``@benchmark(name)`` in a module listed in ``MODULES``; it takes a
``scale`` (1.0 = the reported size; tests call it with a tiny scale to keep it from rotting) and returns a
``BenchResult``. ``bin/bench`` runs them all or the ones named and prints a table, or JSON lines with --json.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

MODULES = [
    "lit_rlseq.bench.rollouts",
    "lit_rlseq.bench.rtfm",
    "lit_rlseq.bench.txt2pi",
    "lit_rlseq.bench.loops",
    "lit_rlseq.bench.ldd",
    "lit_rlseq.bench.trajectory",
    "lit_rlseq.bench.nethack",
    "lit_rlseq.bench.fwp",
    "lit_rlseq.bench.ppo",
    "lit_rlseq.bench.ttm",
    "lit_rlseq.bench.messenger",
    "lit_rlseq.bench.procgen",
]


@dataclass
class BenchResult:
    name: str
    figures: dict[str, float]  # measured numbers, with units in the key (e.g. "windows_per_s")
    ratio: float | None = None  # what we got / the limit, measured in the same run
    goal: float | None = None  # the ratio (or figure) we aim for
    note: str = ""
    lower_is_better: bool = False  # the ratio is a cost (e.g. time fast / time naive): the goal is a maximum
    extra: dict[str, object] = field(default_factory=dict)


REGISTRY: dict[str, Callable[[float], BenchResult | list[BenchResult]]] = {}


def benchmark(name: str):
    def register(fn):
        REGISTRY[name] = fn
        return fn

    return register


def load_all() -> dict[str, Callable[[float], BenchResult | list[BenchResult]]]:
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a real import error inside the module
                raise
    return REGISTRY
