"""A real `tracehouse serve` subprocess on free ports with its own data dir (the `Collector`
the fixtures in tests/project/conftest.py start), and the error its SQL helper raises."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests
from helpers import REPO, free_port, tracehouse_cmd

START_TIMEOUT_S = 60.0


class SqlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class Collector:
    """A `tracehouse serve` process; can be stopped, killed and restarted on the same data dir."""

    def __init__(
        self,
        data_dir: Path,
        env: dict[str, str] | None = None,
        workers: int | None = None,
        command: list[str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.env = dict(env or {})
        self.workers = workers
        # The program: the checkout's `tracehouse` by default, or an installed one
        # (tests/project/test_packaging.py runs the one installed from the wheels).
        self.command = command or tracehouse_cmd()
        self.cwd = cwd
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.returncode: int | None = None
        self._log_path: Path | None = None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        """An HTTP session per thread (tests send from thread pools)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    # -- addresses ---------------------------------------------------------------------------

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def store_dsn(self) -> str:
        return f"chdb://{self.data_dir / 'data'}"

    @property
    def log_path(self) -> Path:
        assert self._log_path is not None
        return self._log_path

    def log_text(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_S) -> Collector:
        assert self.proc is None or self.proc.poll() is not None, "collector already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.returncode = None
        self._log_path = self.data_dir.parent / f"{self.data_dir.name}-serve-{self.starts}.log"
        args = [
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
        ]
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        # Only the settings this fixture was given: none leak in from the developer's shell.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
        env.update(self.env)
        with open(self._log_path, "wb") as log:
            # A session of its own, so that cleanup can reach the decoding workers as well.
            self.proc = subprocess.Popen(
                [*self.command, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.cwd),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self.returncode = code
                raise RuntimeError(f"tracehouse serve exited with {code} while starting:\n{self.log_text()}")
            try:
                r = self.session.get(self.http_url + "/healthz", timeout=2)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self._kill_group()
                raise RuntimeError(f"tracehouse serve not healthy after {timeout}s:\n{self.log_text()}")
            time.sleep(0.1)
        # The server prints the addresses it listens on; they must be the ones asked for.
        text = self.log_text()
        assert f"OTLP/gRPC  127.0.0.1:{self.grpc_port}" in text, text
        assert f"http://127.0.0.1:{self.http_port}/v1/traces" in text, text
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the process to drain and exit; returns its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                raise
        else:
            self.returncode = self.proc.returncode
        self._reap_group()
        return self.returncode

    def kill(self) -> int:
        """SIGKILL the server process (as `kill -9 PID` would), then clean up what it left."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.returncode = self.proc.wait(timeout=30)
        self._reap_group()
        return self.returncode

    def restart(self) -> Collector:
        if self.running():
            self.stop()
        return self.start()

    def _reap_group(self) -> None:
        """Kill whatever is left of the process group this fixture created (orphaned workers)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=30)
            except Exception:
                self._kill_group()
        elif self.proc is not None:
            self._reap_group()
        with self._sessions_lock:
            for s in self._sessions:
                s.close()
            self._sessions.clear()

    # -- helpers -----------------------------------------------------------------------------

    def health(self) -> requests.Response:
        return self.session.get(self.http_url + "/healthz", timeout=10)

    def sql_raw(self, query: str) -> dict[str, Any]:
        r = self.session.post(self.http_url + "/api/v1/sql", json={"sql": query}, timeout=120)
        if r.status_code != 200:
            try:
                message = r.json().get("error", r.text)
            except ValueError:
                message = r.text
            raise SqlError(r.status_code, message)
        return r.json()

    def sql(self, query: str) -> list[dict[str, Any]]:
        """Run read-only SQL through POST /api/v1/sql; rows as dicts keyed by column name."""
        result = self.sql_raw(query)
        return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]

    def scalar(self, query: str) -> Any:
        rows = self.sql_raw(query)["rows"]
        assert len(rows) == 1 and len(rows[0]) == 1, rows
        return rows[0][0]

    def post(self, path: str, body: bytes, content_type: str = "application/x-protobuf", **headers: str):
        return self.session.post(
            self.http_url + path, data=body, headers={"Content-Type": content_type, **headers}, timeout=60
        )
