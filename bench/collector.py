"""A `tracehouse serve` of this checkout for a benchmark: started on free ports over its own
data directory, ready once /healthz answers, stopped with SIGTERM (what a user's Ctrl-C sends)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "collector" / "src", ROOT / "instrumentation" / "src"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(pythonpath: list[Path] | None = None) -> dict[str, str]:
    """This environment without TRACEHOUSE_* and OTEL_* settings, with these sources first on
    the path (this checkout's, by default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
    paths = [str(p) for p in (pythonpath or SOURCES)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def wait_http(
    url: str, proc: subprocess.Popen | None = None, timeout: float = 180, log: Path | None = None
) -> None:
    """Until GET `url` answers 200 (a server's health check)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise SystemExit(f"{url} did not come up" + (f"; see {log}" if log else ""))
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (what a user's Ctrl-C sends), then a kill if it is not gone within a minute."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Collector:
    """`tracehouse serve` in a child process: `with Collector(dir) as c: c.http_url ...`."""

    def __init__(self, data_dir: Path, workers: int = 2) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.grpc_port, self.http_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Collector:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "serve.log"
        cmd = [
            sys.executable, "-m", "tracehouse_collector", "serve", "--data-dir", str(self.data_dir),
            "--grpc-port", str(self.grpc_port), "--http-port", str(self.http_port),
            "--workers", str(self.workers),
        ]  # fmt: skip
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=log)
        wait_http(self.http_url + "/healthz", self.proc, log=log_path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc)
