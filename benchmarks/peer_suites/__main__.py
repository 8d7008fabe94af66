"""`scripts/peer-suites [--mlflow CHECKOUT] [--lightning CHECKOUT] [--only diary|peer] [-n N] [-k EXPR]`:
run the peers' own tests against diary and against the peer, and print the pass counts side by side.

CHECKOUT is a directory holding the peer's `tests/` tree (MLflow: the 3.6-era `tests/` of
opendatahub-io/mlflow; Lightning: `tests/` of tag 2.6.5), outside this repository. The tests that pass on
the peer and not on diary are listed by name, so they can be worked through.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from .results import ENV

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MLFLOW_TESTS = "tests/tracking/test_rest_tracking.py"
LIGHTNING_TESTS = "tests/tests_pytorch/loggers/test_all.py"
TEST_TIMEOUT = 300  # seconds; a test that hangs counts as failed (pytest-timeout)


def _pytest(checkout: Path, args: list[str], extra_path: list[Path], workers: int, out: Path) -> list[dict]:
    """Run pytest in the checkout with a plugin of ours; the outcome of each test."""
    # Traces are exported synchronously: an asynchronous export queue left for a server a test has
    # stopped hangs the next fixture's teardown (MLflow's own server as much as ours).
    env = {**os.environ, ENV: str(out), "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false"}
    path = [str(ROOT), *map(str, extra_path), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", "--tb=line",
               "-o", "addopts=", "-W", "ignore", f"--timeout={TEST_TIMEOUT}"]
    if workers > 1:
        command += ["-n", str(workers)]
    done = subprocess.run(command, cwd=checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not out.exists():
        sys.stderr.write(done.stdout[-5000:])
        raise SystemExit(f"pytest in {checkout} reported nothing (exit {done.returncode})")
    return json.loads(out.read_text())


def run_mlflow(checkout: Path, targets: list[str], workers: int, select: list[str], tmp: Path) -> dict[str, list[dict]]:
    """MLflow's REST tracking tests, once per target (`diary`: `diary server`; `peer`: MLflow's server)."""
    out = {}
    for target in targets:
        args = [MLFLOW_TESTS, "-p", "benchmarks.peer_suites.mlflow_plugin",
                f"--peer-target={'diary' if target == 'diary' else 'mlflow'}", *select]
        out[target] = _pytest(checkout, args, [], workers, tmp / f"mlflow-{target}.json")
    return out


def run_lightning(checkout: Path, workers: int, select: list[str], tmp: Path) -> list[dict]:
    """Lightning's logger tests, every logger (its own and DiaryLogger) in one run."""
    alias: list[Path] = []
    try:
        import lightning  # noqa: F401
    except ImportError:
        alias = [HERE / "lightning_alias"]
    os.environ.setdefault("PEER_SUITES_DIARY_DB", str(tmp / "lightning-diary.db"))
    args = [LIGHTNING_TESTS, "-p", "benchmarks.peer_suites.lightning_plugin", *select]
    return _pytest(checkout, args, alias, workers, tmp / "lightning.json")


def table(title: str, rows: dict[str, list[dict]]) -> str:
    lines = [f"### {title}", "", "| who | passed | failed | skipped |", "|---|---|---|---|"]
    for who, results in rows.items():
        c = Counter(r["outcome"] for r in results)
        lines.append(f"| {who} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    return "\n".join(lines)


def regressions(ours: list[dict], theirs: list[dict]) -> list[str]:
    """Tests that pass on the peer and not on diary (by test name)."""
    def name(test: str) -> str:
        return test.split("::", 1)[-1].split("[", 1)[0]

    passed = {name(r["test"]) for r in theirs if r["outcome"] == "passed"}
    return sorted(name(r["test"]) for r in ours if r["outcome"] != "passed" and name(r["test"]) in passed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/peer-suites", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlflow", type=Path, help="checkout holding MLflow's tests/ (3.6-era)")
    parser.add_argument("--lightning", type=Path, help="checkout holding Lightning's tests/ (tag 2.6.5)")
    parser.add_argument("--only", choices=["diary", "peer"], help="run one side only (MLflow)")
    parser.add_argument("-n", type=int, default=2, help="pytest-xdist workers (MLflow; default 2)")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression, to rerun a few tests")
    parser.add_argument("--json", type=Path, help="also write every test's outcome here")
    args = parser.parse_args(argv)
    if not args.mlflow and not args.lightning:
        parser.error("give --mlflow and/or --lightning")
    select = ["-k", args.keyword] if args.keyword else []
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="peer-suites-") as name:
        tmp = Path(name)
        if args.mlflow:
            targets = [args.only] if args.only else ["peer", "diary"]
            found = run_mlflow(args.mlflow.resolve(), targets, args.n, select, tmp)
            report["mlflow"] = found
            print(table(f"MLflow {MLFLOW_TESTS} (tests using mlflow_client)",
                        {("mlflow server" if k == "peer" else "diary server"): v for k, v in found.items()}))
            if "peer" in found and "diary" in found:
                gap = regressions(found["diary"], found["peer"])
                print(f"\npass on mlflow server, not on diary server ({len(gap)}):")
                for test in gap:
                    print(f"  {test}")
            print()
        if args.lightning:
            results = run_lightning(args.lightning.resolve(), 1, select, tmp)
            report["lightning"] = results
            by_logger: dict[str, list[dict]] = {}
            for r in results:
                by_logger.setdefault(r["column"], []).append(r)
            print(table(f"Lightning {LIGHTNING_TESTS} (per logger)", dict(sorted(by_logger.items()))))
            for r in results:
                if r["column"] == "DiaryLogger" and r["outcome"] != "passed":
                    print(f"  DiaryLogger {r['outcome']}: {r['test']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
