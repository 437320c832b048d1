"""A controllable ClickHouse HTTP endpoint backed by chDB, for tests (no ClickHouse server here).

It speaks the part of ClickHouse's HTTP interface that clickhouse-connect uses: the SQL comes in
the ``query`` URL parameter or as the body; ``database``, ``default_format`` and ``param_*``
(server-side bound parameters) are honoured; other URL parameters are taken as ClickHouse
settings. Responses are never compressed (clients accept identity). Errors answer like a server:
HTTP 500 with ``Code: N. DB::Exception: ...`` and an ``X-ClickHouse-Exception-Code`` header.

What clickhouse-connect sends, and so what this answers: at connect ``SELECT version(),
timezone()`` (TabSeparated), then ``system.settings`` and a protocol-version probe (Native);
queries end in ``FORMAT Native``, which chDB writes as is; every URL carries the client's
settings (``date_time_input_format``, ``session_id``, ...), applied here to SELECTs as a
``SETTINGS`` clause (so ``readonly = 1`` is enforced by the engine) and to INSERTs. It accepts
any response encoding, so compression is simply never used; compressed request bodies
(gzip, deflate, zstd, lz4) are inflated.

An INSERT with its data in the body (clickhouse-connect's ``raw_insert``) is written to a temp
file and run as ``INSERT ... FROM INFILE`` with the request's settings, so
``insert_deduplication_token`` behaves as on a server.

Faults, switched at run time by ``GET /__fault?mode=...`` (``GET /__fault`` reports the mode):
- ``ok``: normal service;
- ``unavailable``: every request gets HTTP 503 with a ClickHouse "too many simultaneous queries"
  error (transient);
- ``reset``: every connection is closed before an answer (the client sees a network error);
- ``hang``: requests wait (up to ``hang_s``, default 600 s) until the mode changes, then fail;
- ``poison&marker=TEXT``: normal service, except INSERTs whose data contains TEXT, which get a
  permanent data error (Code 27, cannot parse input), as a server would for a bad row;
- ``commit_reset&count=N``: the next N INSERTs are committed, then their connection is closed
  without an answer (the client cannot tell whether the rows landed); then back to ``ok``;
- ``commit_hang&count=N``: the next N INSERTs are committed, then their answer waits (up to
  ``hang_s``) until the mode changes; later INSERTs are served. Meant for killing the client in
  the window between ClickHouse's commit and the client learning of it.
``GET /__fault`` answers the mode, and ``GET /__fault?committed=1`` the number of INSERTs
committed under the two ``commit_*`` modes so far.
"Connection refused" is had by stopping the process; its data dir keeps the tables for a restart.

Credentials: started with ``--password``, every request must authenticate as ``default`` with
it, the ways a server takes them (HTTP Basic, ``X-ClickHouse-User``/``X-ClickHouse-Key``, or
``user``/``password`` URL parameters); otherwise HTTP 401 with Code 516 (AUTHENTICATION_FAILED).

What only a real server shows, and so is not tested against this fake: concurrent statements
(one chDB engine runs one statement at a time here, so two collectors' inserts interleave but
never overlap), and URL settings on SHOW, DESCRIBE and EXPLAIN (a server applies URL settings
to every statement's context; the fake can attach them only to SELECTs and INSERTs, where
ClickHouse takes a SETTINGS clause, and checks ``readonly`` on the rest itself).

    python tests/support/fake_clickhouse.py --port 18123 --data /tmp/fake-ch [--log]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import http.server
import os
import re
import sys
import tempfile
import threading
import time
import zlib
from urllib.parse import parse_qsl, urlsplit

# URL parameters that are part of the HTTP protocol, not ClickHouse settings.
_PROTOCOL_PARAMS = {
    "query", "database", "default_format", "query_id", "session_id", "session_timeout", "session_check",
    "compress", "decompress", "user", "password", "quota_key", "wait_end_of_query", "buffer_size",
    "enable_http_compression", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "http_zlib_compression_level", "role",
}  # fmt: skip
_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[\w.`\"]+)\s*(?P<cols>\([^)]*\))?\s*FORMAT\s+(?P<fmt>\w+)\s*$",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_SELECTISH = re.compile(r"^\s*(\(\s*)*(SELECT|WITH)\b", re.IGNORECASE)
_READ_STATEMENT = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)")


def _setting_value(value: str) -> str:
    return (
        value
        if re.fullmatch(r"-?\d+(\.\d+)?", value)
        else "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    )


def _settings_clause(settings: dict[str, str]) -> str:
    return ", ".join(f"{k} = {_setting_value(v)}" for k, v in settings.items())


def _is_data_insert(params: dict[str, str], body: bytes) -> bool:
    """An INSERT whose rows travel in the body (the collector's batches, not its bookkeeping)."""
    return bool(body) and bool(re.match(r"\s*INSERT\b", params.get("query", ""), re.IGNORECASE))


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        return brotli.decompress(body)
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


class FakeClickHouse:
    """The chDB session and the fault switch; one statement runs at a time (chDB is one engine)."""

    def __init__(self, data_dir: str, log: bool = False, password: str | None = None) -> None:
        from chdb import session

        self.session = session.Session(data_dir)
        self.password = password  # None: any client is let in, as a default install does
        self.tmp_dir = tempfile.mkdtemp(prefix="fake-ch-")
        self.lock = threading.Lock()
        self.mode = "ok"
        self.marker = b""
        self.hang_s = 600.0
        self.changed = threading.Condition()
        self.log = log
        self.counts: dict[str, int] = {}
        self.commit_faults_left = 0  # INSERTs still to commit and then fail (commit_* modes)
        self.committed_then_failed = 0

    def set_mode(self, mode: str, marker: str = "", hang_s: float | None = None, count: int = 1) -> None:
        with self.changed:
            self.mode = mode
            self.marker = marker.encode()
            if hang_s is not None:
                self.hang_s = hang_s
            self.commit_faults_left = count if mode.startswith("commit_") else 0
            self.changed.notify_all()

    def take_commit_fault(self) -> str | None:
        """For an INSERT about to run: the commit_* mode to apply to it, if any are left."""
        with self.changed:
            if not self.mode.startswith("commit_") or self.commit_faults_left <= 0:
                return None
            self.commit_faults_left -= 1
            return self.mode

    def committed_and_failed(self, mode: str) -> None:
        with self.changed:
            self.committed_then_failed += 1
            if mode == "commit_reset" and self.commit_faults_left == 0:
                self.mode = "ok"
            self.changed.notify_all()

    def wait_while(self, mode: str) -> None:
        deadline = time.monotonic() + self.hang_s
        with self.changed:
            while self.mode == mode and time.monotonic() < deadline:
                self.changed.wait(deadline - time.monotonic())

    def authenticated(self, headers, params: dict[str, str]) -> bool:
        if self.password is None:
            return True
        user, password = params.get("user"), params.get("password")
        if "X-ClickHouse-User" in headers:
            user, password = headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        return (user or "default") == "default" and password == self.password

    def wait_while_hanging(self) -> None:
        self.wait_while("hang")

    def execute(self, params: dict[str, str], body: bytes) -> tuple[bytes, str]:
        """Run one request's statement; returns (output, format). Raises on a ClickHouse error."""
        sql = params.get("query")
        data = None
        if sql is None:
            sql, body = body.decode(), b""
        elif body:
            data = body
        settings = {
            k: v for k, v in params.items() if k not in _PROTOCOL_PARAMS and not k.startswith("param_")
        }
        bound = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}
        database = params.get("database") or "default"
        fmt = params.get("default_format") or "TabSeparated"
        if data is not None:
            match = _INSERT.match(sql)
            if not match:
                raise RuntimeError(
                    "Code: 62. DB::Exception: fake ClickHouse: a body with a query must be INSERT ... FORMAT"
                )
            if self.mode == "poison" and self.marker and self.marker in data:
                raise RuntimeError(
                    "Code: 27. DB::Exception: Cannot parse input: poisoned row (fake fault). (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"
                )
            fd, path = tempfile.mkstemp(dir=self.tmp_dir, suffix=".data")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                clause = f" SETTINGS {_settings_clause(settings)}" if settings else ""
                stmt = (
                    f"INSERT INTO {match['table']} {match['cols'] or ''} FROM INFILE '{path}'{clause} "
                    f"FORMAT {match['fmt']}"
                )
                return self._run(database, stmt, "TabSeparated", bound), "TabSeparated"
            finally:
                os.unlink(path)
        fmt_match = _TRAILING_FORMAT.search(sql)
        if fmt_match:
            fmt, sql = fmt_match.group(1), sql[: fmt_match.start()]
        if settings.get("readonly", "0") != "0" and not _READ_STATEMENT.match(sql):
            raise RuntimeError(
                "Code: 164. DB::Exception: fake ClickHouse: cannot execute this query in readonly mode. (READONLY)"
            )
        if settings and _SELECTISH.match(sql):
            # Per-query settings (readonly, limits) ride on the statement, as a server applies them.
            sql = f"{sql.rstrip().rstrip(';')} SETTINGS {_settings_clause(settings)}"
        return self._run(database, sql, fmt, bound), fmt

    def _run(self, database: str, sql: str, fmt: str, bound: dict[str, str]) -> bytes:
        with self.lock:
            if self.log:
                print(f"fake-ch [{database}] {sql[:300]!r} fmt={fmt}", file=sys.stderr, flush=True)
            self.session.query(f"USE {database}", "TabSeparated")
            result = self.session.query(sql, fmt, params=bound or None)
            return result.bytes() if result is not None else b""


def make_handler(ch: FakeClickHouse) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class name
            if ch.log:
                super().log_message(format, *args)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            if url.path == "/__fault":
                if "mode" in params:
                    ch.set_mode(
                        params["mode"],
                        params.get("marker", ""),
                        float(params["hang_s"]) if "hang_s" in params else None,
                        int(params.get("count", 1)),
                    )
                answer = ch.committed_then_failed if "committed" in params else ch.mode
                self._send(200, f"{answer}\n".encode())
                return
            if url.path == "/ping":
                self._send(200, b"Ok.\n")
                return
            body = self._read_body()
            if not ch.authenticated(self.headers, params):
                msg = (
                    b"Code: 516. DB::Exception: default: Authentication failed: password is incorrect, "
                    b"or there is no user with such name. (AUTHENTICATION_FAILED)\n"
                )
                self._send(401, msg, {"X-ClickHouse-Exception-Code": "516", "Content-Type": "text/plain"})
                return
            mode = ch.mode
            ch.counts[mode] = ch.counts.get(mode, 0) + 1
            if mode == "reset":
                self.close_connection = True
                self.connection.close()
                return
            if mode == "hang":
                ch.wait_while_hanging()
                self.close_connection = True
                self.connection.close()
                return
            if mode == "unavailable":
                msg = b"Code: 202. DB::Exception: Too many simultaneous queries (fake fault). (TOO_MANY_SIMULTANEOUS_QUERIES)\n"
                self._send(503, msg, {"X-ClickHouse-Exception-Code": "202", "Content-Type": "text/plain"})
                return
            commit_fault = ch.take_commit_fault() if _is_data_insert(params, body) else None
            try:
                body = _decompress(body, self.headers.get("Content-Encoding", ""))
                out, fmt = ch.execute(params, body)
            except Exception as exc:
                text = str(exc).strip() or type(exc).__name__
                code = _CODE.search(text)
                self._send(500, (text + "\n").encode(), {
                    "X-ClickHouse-Exception-Code": code.group(1) if code else "1001",
                    "Content-Type": "text/plain; charset=UTF-8",
                })  # fmt: skip
                return
            if commit_fault is not None:  # the rows are in; the client never hears so
                ch.committed_and_failed(commit_fault)
                if commit_fault == "commit_hang":
                    ch.wait_while("commit_hang")
                self.close_connection = True
                self.connection.close()
                return
            self._send(200, out, {
                "Content-Type": "application/octet-stream",
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": "UTC",
                "X-ClickHouse-Server-Display-Name": "fake-clickhouse",
                "X-ClickHouse-Summary": '{"read_rows":"0","written_rows":"0"}',
            })  # fmt: skip

    return Handler


class FakeClickHouseProcess:
    """Runs the fake in a process of its own (as a real server would be) and drives its faults."""

    def __init__(self, data_dir: str | os.PathLike, port: int, password: str | None = None) -> None:
        self.data_dir = str(data_dir)
        self.port = port
        self.password = password
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(os.path.abspath(self.data_dir)), f"fake-ch-{port}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dsn(self) -> str:
        credentials = f"default:{self.password}" if self.password is not None else "default"
        return f"http://{credentials}@127.0.0.1:{self.port}/tracehouse"

    def start(self, mode: str = "ok", timeout: float = 60) -> FakeClickHouseProcess:
        import subprocess
        import urllib.request

        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it until it ends
        cmd = [sys.executable, os.path.abspath(__file__), "--port", str(self.port), "--data", self.data_dir]
        if self.password is not None:
            cmd += ["--password", self.password]
        self.proc = subprocess.Popen([*cmd, "--mode", mode], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fake ClickHouse did not start; see {self.log_path}")
            time.sleep(0.1)

    def fault(self, mode: str, **params: object) -> None:
        """Switch the fault mode (see the module docstring)."""
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"mode": mode, **params})
        with urllib.request.urlopen(f"{self.url}/__fault?{query}", timeout=10) as resp:
            assert resp.read().decode().strip() == mode

    def committed_then_failed(self) -> int:
        """How many INSERTs the commit_* faults have committed (and then failed) so far."""
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/__fault?committed=1", timeout=10) as resp:
            return int(resp.read().decode())

    def sql(self, query: str) -> list[dict]:
        """Rows of a SELECT, read straight from the store (not through a collector)."""
        import json
        import urllib.request

        req = urllib.request.Request(
            f"{self.url}/?database=tracehouse&default_format=JSONEachRow", data=query.encode(), method="POST"
        )
        if self.password is not None:
            req.add_header("X-ClickHouse-User", "default")
            req.add_header("X-ClickHouse-Key", self.password)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]

    def stop(self) -> None:
        """Stop the process: clients now get "connection refused"."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True, help="chDB data directory (kept across restarts)")
    parser.add_argument("--mode", default="ok", help="initial fault mode")
    parser.add_argument("--log", action="store_true", help="print every statement to stderr")
    parser.add_argument("--password", help="require this password of user default")
    args = parser.parse_args(argv)
    ch = FakeClickHouse(args.data, log=args.log, password=args.password)
    ch.set_mode(args.mode)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(ch))
    server.daemon_threads = True
    print(f"fake clickhouse listening on 127.0.0.1:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
