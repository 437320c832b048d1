"""Mutation checks: break a guarantee on purpose and count how often the tests notice.

    python tests/support/mutants.py dedup-token --runs 4 [--tests NODE ...]

A mutant is a small patch applied in every Python process of a test run (the collectors the tests
start included) through a `sitecustomize` module put first on PYTHONPATH; the source tree is not
touched. The patched code records that it ran, so a run where the mutant never executed is
reported as such rather than counted as "survived". Prints one line per run and a summary;
exits 0 when every run caught the mutant.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]  # tests/: the test paths below are relative to it


@dataclass(frozen=True)
class Mutant:
    description: str
    patch: str  # the body of sitecustomize.py; MUTANT_MARK names a file to append to when it runs
    tests: tuple[str, ...]  # the tests meant to catch it


MUTANTS = {
    "dedup-token": Mutant(
        description="the insert deduplication token changes on every attempt (store/client.py)",
        patch='''
import os, uuid

def _mutate():
    from tracehouse_collector.store import client

    original = client.Store.insert_files

    def insert_files(self, table, pattern, fmt, dedup_token):
        with open(os.environ["MUTANT_MARK"], "a") as mark:
            mark.write(f"{os.getpid()}\\n")
        return original(self, table, pattern, fmt, f"{dedup_token}:{uuid.uuid4().hex}")

    client.Store.insert_files = insert_files

try:
    _mutate()
except ImportError:  # a process without the collector installed
    pass
''',
        tests=("e2e/test_exactly_once.py",),
    ),
}


def run_once(mutant: Mutant, tests: list[str], workdir: Path, index: int) -> tuple[bool, bool, str]:
    """One pytest run with the mutant applied: (caught, mutant ran, summary line)."""
    site = workdir / f"site-{index}"
    site.mkdir()
    (site / "sitecustomize.py").write_text(mutant.patch)
    mark = workdir / f"mark-{index}"
    mark.touch()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    env["MUTANT_MARK"] = str(mark)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=str(TESTS_DIR),
        env=env,
        capture_output=True,
        text=True,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode != 0, mark.stat().st_size > 0, lines[-1] if lines else done.stderr.strip()[-200:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mutant", choices=sorted(MUTANTS))
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--tests", nargs="+", help="test files or node ids (default: the mutant's own)")
    args = parser.parse_args(argv)
    mutant = MUTANTS[args.mutant]
    tests = args.tests or list(mutant.tests)
    print(f"mutant {args.mutant}: {mutant.description}\ntests: {' '.join(tests)}")
    caught = ran = 0
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        for i in range(args.runs):
            was_caught, did_run, summary = run_once(mutant, tests, Path(tmp), i)
            caught += was_caught and did_run
            ran += did_run
            verdict = "caught" if was_caught else "survived"
            print(f"  run {i + 1}: {verdict if did_run else 'mutant never ran'} ({summary})")
    print(f"caught in {caught} of {args.runs} runs ({ran} runs executed the mutant)")
    return 0 if caught == args.runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
