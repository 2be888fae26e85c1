"""bin/bench: run the benchmarks (all, or those named) and print a table, or JSON lines with --json."""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from lit_rlseq.bench import BenchResult, load_all


def _results(value: BenchResult | list[BenchResult]) -> list[BenchResult]:
    return value if isinstance(value, list) else [value]


def _format_number(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def main(argv: list[str] | None = None) -> int:
    registry = load_all()
    parser = argparse.ArgumentParser(prog="bin/bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(sorted(registry))}")
    parser.add_argument("--json", action="store_true", help="one JSON object per result line")
    parser.add_argument("--scale", type=float, default=1.0, help="run length multiplier (1.0 = reported size)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in registry]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(registry)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names or sorted(registry)
    for name in names:
        start = time.perf_counter()
        results = _results(registry[name](args.scale))
        seconds = time.perf_counter() - start
        for result in results:
            if args.json:
                print(json.dumps({"name": result.name, "figures": result.figures, "ratio": result.ratio,
                                  "goal": result.goal, "lower_is_better": result.lower_is_better, "note": result.note, "seconds": round(seconds, 1),
                                  **result.extra}), flush=True)
            else:
                ratio = "" if result.ratio is None else f"ratio {result.ratio:.2f}"
                relation = "<=" if result.lower_is_better else ">="
                goal = "" if result.goal is None else f"(goal {relation} {result.goal:g})"
                print(f"{result.name:32s} {ratio:12s} {goal:14s} {result.note}", flush=True)
                for key, value in result.figures.items():
                    print(f"    {key:38s} {_format_number(value)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
