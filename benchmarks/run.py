"""Run the benchmark workloads side by side with their baselines and print a table of ratios.

    python benchmarks/run.py [--only SUBSTRING] [--samples N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks import bench_core, bench_graph, bench_train  # noqa: E402
from benchmarks.harness import measure, table  # noqa: E402

SUITES = [bench_core, bench_train, bench_graph]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--only", default="", help="run workloads whose group or name contains this text")
    p.add_argument("--samples", type=int, default=15)
    p.add_argument("--json", default="", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    results = []
    for suite in SUITES:
        for w in suite.workloads():
            if args.only and args.only not in w.group and args.only not in w.name:
                continue
            r = measure(w, samples=args.samples)
            results.append(r)
            print(f"  {w.group:32s} {w.name:32s} {r.ratio:6.2f}x", flush=True)
    print()
    print(f"danlu / baseline, medians of {args.samples} interleaved samples after warm-up; "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    print(table(results))
    if not args.only or "extra" in args.only:
        print()
        for name, value in bench_graph.extra_measurements():
            print(f"- {name}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"group": r.workload.group, "name": r.workload.name, "danlu_s": r.danlu_s,
                        "baseline_s": r.base_s, "baseline": r.workload.baseline, "ratio": r.ratio,
                        "target": r.workload.target} for r in results], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
