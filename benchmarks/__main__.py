"""`python -m benchmarks [--quick] [--only WORD] [--module M] [--repeats N] [--out BENCHMARKS.md]`: run the
cases side by side with their peers and write the report."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib import metadata
from pathlib import Path

from .harness import report, run_case

CASE_MODULES = [
    "cases_core", "cases_lightning", "cases_server", "cases_sklearn", "cases_memory", "cases_fresh", "cases_boosting",
    "cases_search", "cases_transformers", "cases_system", "cases_ray",
]


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("diary-integrations", "sqlalchemy", "mlflow", "pytorch-lightning", "torch", "scikit-learn", "ray"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a smoke test")
    parser.add_argument("--only", action="append", default=[], help="run cases whose name contains this word")
    parser.add_argument("--module", action="append", default=[], choices=CASE_MODULES,
                        help="run only this module's cases (the test suite's smoke run takes one module per test)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs of each variant (default: each case's own); more for a tight ratio")
    parser.add_argument("--out", default=None, help="report path (default: BENCHMARKS.md, or none with --quick)")
    args = parser.parse_args(argv)

    factories = []
    for name in args.module or CASE_MODULES:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.endswith(name):
                continue  # that group of cases does not exist yet
            raise
        factories.extend(module.CASES)

    results = []
    for factory in factories:
        case = factory(args.quick)
        if args.quick:
            case.repeats = 1  # the smoke run (a test in the suite) checks that each case works, not its speed
        elif args.repeats:
            case.repeats = args.repeats
        if args.only and not any(word.lower() in case.name.lower() for word in args.only):
            continue
        print(f"# {case.name}", flush=True)
        results.append(run_case(case, log=lambda line: print(line, flush=True)))
    text = report(results, quick=args.quick, versions=_versions())
    print()
    print(text)
    out = args.out or (None if args.quick else "BENCHMARKS.md")
    if out:
        Path(out).write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    failed = [result.case.name for result in results if result.error]
    if failed:  # the report holds the others; the exit status says the run is not whole (the smoke tests fail)
        print(f"failed cases: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
