"""Start-up times, in two parts (`--only hook` or `--only cli` runs one):

1. The CLI: `tracehouse` commands that read through a running collector, against the 80 ms
   target, beside `python -c pass` and, with `--baseline SRC`, another checkout's sources
   (bench/startup/cli.py).

2. The start-up hook: interpreter start-up, side by side, in two throwaway virtual environments
that see this environment's packages through a plain path line (so other packages' start-up
files do not blur the comparison):

- without tracehouse's start-up hook (the baseline),
- with the hook (`tracehouse.pth` and `tracehouse.start`), TRACEHOUSE_INSTRUMENT unset,
- with the hook and TRACEHOUSE_INSTRUMENT=1 (instrumentors hooked; the OpenTelemetry SDK is
  set up later, on the first instrumented call).

Each runs `python -c pass` many times; the median and best wall times are reported.

    make bench-startup
    python -m bench.startup --only cli --runs 30 --baseline /tmp/old/collector/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from bench.startup import cli


def _times(python: str, env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env=env, check=True)
        out.append(time.perf_counter() - t)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each case (default 20)")
    parser.add_argument("--only", choices=("cli", "hook"), help="run one part")
    parser.add_argument("--server", help="time the CLI against this running collector (default: start one)")
    parser.add_argument(
        "--baseline", metavar="SRC", help="the collector/src of another checkout, timed alike"
    )
    args = parser.parse_args(argv)
    if args.only != "hook":
        print(cli.run(args.runs, args.server, args.baseline), end="\n\n", flush=True)
    if args.only != "cli":
        print(hook_table(args.runs))
    return 0


def hook_table(runs: int) -> str:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    # Where the hook would send spans: nowhere is contacted at start-up, so any address does.
    on_env = dict(base_env, TRACEHOUSE_INSTRUMENT="1", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    hook_files = [
        Path(p) / name
        for p in sys.path
        if p.endswith("site-packages")
        for name in ("tracehouse.pth", "tracehouse.start")
    ]
    hook_files = list({f.resolve(): f for f in hook_files if f.is_file()}.values())  # lib64 -> lib
    if len(hook_files) != 2:
        raise SystemExit("tracehouse's start-up files are not installed in this environment")
    visible = [p for p in sys.path if p and Path(p).is_dir() and ("site-packages" in p or p.endswith("src"))]
    with tempfile.TemporaryDirectory() as tmp:
        pythons = []
        for name, with_hook in (("without", False), ("with", True)):
            root = Path(tmp) / name
            venv.EnvBuilder(with_pip=False).create(root)
            site = next(root.glob("lib/python*/site-packages"))
            (site / "_bench_paths.pth").write_text("\n".join(visible) + "\n")
            if with_hook:
                for f in hook_files:
                    (site / f.name).write_text(f.read_text())
            pythons.append(str(root / "bin" / "python"))
        cases = [
            ("without the tracehouse hook", pythons[0], base_env),
            ("with the hook, variable unset", pythons[1], base_env),
            ("with the hook, TRACEHOUSE_INSTRUMENT=1", pythons[1], on_env),
        ]
        for _, python, env in cases:  # warm the page cache and .pyc files
            _times(python, env, 3)
        results = [(name, _times(python, env, runs)) for name, python, env in cases]

    base = statistics.median(results[0][1])
    lines = [
        f"{'interpreter start-up (python -c pass)':48} {'median ms':>10} {'best ms':>9} {'vs baseline':>12}"
    ]
    for name, times in results:
        med = statistics.median(times)
        lines.append(
            f"{name:48} {med * 1e3:>10.1f} {min(times) * 1e3:>9.1f} {f'+{(med - base) * 1e3:.1f} ms':>12}"
        )
    return "\n".join(lines)
