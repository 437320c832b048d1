"""`tracehouse serve --offer-demo` (what `make run` starts): on an empty store with a terminal on
stdin it asks whether to load the demo data; yes fills the store through OTLP, no leaves it
empty, and without a terminal it never asks (nor waits)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

import pytest
import requests
from helpers import free_port, tracehouse_cmd

QUESTION = "Load the demo data into it now? [y/N]"


class Served:
    def __init__(self, tmp_path, tty: bool) -> None:
        self.http = free_port()
        self.url = f"http://127.0.0.1:{self.http}"
        self.master = None
        stdin = subprocess.DEVNULL
        if tty:
            self.master, slave = pty.openpty()
            stdin = slave
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACEHOUSE_", "OTEL_"))}
        self.proc = subprocess.Popen(
            tracehouse_cmd(
                "serve",
                "--offer-demo",
                "--data-dir",
                str(tmp_path / "state"),
                "--grpc-port",
                str(free_port()),
                "--http-port",
                str(self.http),
                "--workers",
                "1",
            ),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        if tty:
            os.close(slave)
        self.out = b""

    def read_until(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} in:\n{self.out.decode(errors='replace')}"
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"serve exited:\n{self.out.decode(errors='replace')}"
                self.out += chunk
        return self.out.decode(errors="replace")

    def read_to_end(self, timeout: float = 90) -> str:
        """Everything written to stdout until every writer (serve and its children) closed it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "stdout still open"
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return self.out.decode(errors="replace")
                self.out += chunk

    def wait_handles(self, sig: int, timeout: float = 30) -> None:
        """Until the process catches `sig` (its bit in /proc/PID/status SigCgt)."""
        deadline = time.monotonic() + timeout
        while True:
            status = open(f"/proc/{self.proc.pid}/status").read()  # noqa: SIM115 - read at once
            caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
            if caught >> (sig - 1) & 1:
                return
            assert time.monotonic() < deadline, f"signal {sig} never handled"
            time.sleep(0.02)

    def answer(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def count(self, sql: str) -> int:
        return requests.get(self.url + "/api/v1/sql", params={"q": sql}, timeout=30).json()["rows"][0][0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.master is not None:
            os.close(self.master)
            self.master = None


@pytest.fixture
def serve(tmp_path):
    started = []

    def _start(tty: bool) -> Served:
        s = Served(tmp_path, tty)
        started.append(s)
        return s

    yield _start
    for s in started:
        s.stop()


def test_yes_loads_the_demo(serve):
    s = serve(tty=True)
    s.read_until(QUESTION)
    s.answer("y")
    s.read_until("Demo data loaded.", timeout=180)
    assert s.count("SELECT count() FROM runs FINAL") >= 4
    assert s.count("SELECT count() FROM otel_traces") > 100


def test_no_leaves_the_store_empty(serve):
    s = serve(tty=True)
    s.read_until(QUESTION)
    s.answer("n")
    s.read_until("No demo data")
    assert s.count("SELECT count() FROM otel_traces") == 0
    # Proof that no demo ran, without waiting an arbitrary while: a demo is a child process
    # writing to serve's stdout, so the output ends (EOF) only once it has exited too.
    s.stop()
    rest = s.read_to_end()
    assert "Demo data loaded" not in rest and "demo failed" not in rest and "tracehouse demo:" not in rest, rest
    assert "tracehouse serve: stopped" in rest


def test_without_a_terminal_it_never_asks(serve):
    s = serve(tty=False)
    out = s.read_until("tracehouse demo")  # the banner still suggests it
    assert QUESTION not in out
    s.wait_handles(signal.SIGTERM)  # installed right after the banner; a signal before would kill
    assert s.proc.poll() is None
    s.stop()
    assert s.proc.returncode == 0  # and nothing waited on an answer at shutdown
