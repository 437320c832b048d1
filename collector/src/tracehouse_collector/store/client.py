"""The one module that talks to ClickHouse, embedded (chDB) or a server, via clickhouse-connect.

DSNs:
- ``chdb:///abs/dir`` or ``chdb://~/dir``: the embedded engine; the process that opens it owns it.
- ``http://user:pass@host:8123/db`` or ``https://...``: a ClickHouse server or cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from tracehouse_collector.store import ddl, schema
from tracehouse_collector.store.errors import StoreError, StoreLockedError, StoreUnavailableError

__all__ = ["DSN", "Store", "StoreError", "StoreLockedError", "StoreUnavailableError", "is_transient"]

# ClickHouse error codes that say "not now" rather than "not this data".
_TRANSIENT_CODES = frozenset(
    {3, 159, 160, 164, 202, 203, 209, 210, 241, 242, 252, 285, 319, 394, 425, 439, 999, 1000, 1002}
)
_CODE = re.compile(r"Code: (\d+)")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return True
    match = _CODE.search(str(exc))
    return match is None or int(match.group(1)) in _TRANSIENT_CODES


@dataclass(frozen=True)
class DSN:
    kind: str  # "chdb" or "http"
    path: Path | None = None
    host: str = ""
    port: int = 8123
    username: str = "default"
    password: str = ""
    database: str = schema.DATABASE
    secure: bool = False

    @classmethod
    def parse(cls, dsn: str) -> DSN:
        parts = urlsplit(dsn)
        if parts.scheme == "chdb":
            raw = (parts.netloc + parts.path) if parts.netloc else parts.path
            if not raw:
                raise StoreError(f"store DSN {dsn!r} names no directory (use chdb:///path/to/dir)")
            return cls(kind="chdb", path=Path(unquote(raw)).expanduser().resolve())
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise StoreError(f"store DSN {dsn!r} names no host")
            database = parts.path.strip("/") or schema.DATABASE
            if database != schema.DATABASE:
                raise StoreError(
                    f"store DSN {dsn!r}: Tracehouse keeps its tables in database "
                    f"{schema.DATABASE!r}; use .../{schema.DATABASE} or no path"
                )
            secure = parts.scheme == "https"
            return cls(
                kind="http",
                host=parts.hostname,
                port=parts.port or (8443 if secure else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                database=database,
                secure=secure,
            )
        raise StoreError(
            f"unsupported store DSN {dsn!r}: use chdb:///path/to/dir or http(s)://user:pass@host:8123/db"
        )

    def display(self) -> str:
        if self.kind == "chdb":
            return f"chdb://{self.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.username}@{self.host}:{self.port}/{self.database}"


def _expand(pattern: str) -> list[str]:
    """The files a ClickHouse path glob names, in the order it reads them: sorted within each
    alternative of a `{a,b}` group (Python's glob has no braces), alternatives in order."""
    head, brace, rest = pattern.partition("{")
    if not brace:
        return sorted(glob.glob(pattern))
    choices, _, tail = rest.partition("}")
    return [p for choice in choices.split(",") for p in _expand(head + choice + tail)]


def _read_files(pattern: str, chunk: int = 1 << 20) -> Iterator[bytes]:
    for path in _expand(pattern):
        with open(path, "rb") as fh:
            while data := fh.read(chunk):
                yield data


def _arrow_stream(pattern: str) -> Iterator[bytes]:
    """The Arrow IPC streams of the files matching a glob, as one stream.

    A server reads one stream per insert (what follows a stream's end is ignored), so the
    files' batches are written into a single stream, with the union of their columns: a column
    a file lacks is null there, which ClickHouse stores as the column's default, as it would
    for the file alone. One file's batches are held at a time.
    """
    import pyarrow as pa  # loaded by the first Arrow insert into a server, not at start-up

    paths = _expand(pattern)
    schemas = []
    for path in paths:
        with pa.memory_map(path) as source:
            schemas.append(pa.ipc.open_stream(source).schema)
    if not schemas:
        return
    schema = pa.unify_schemas(schemas)
    chunks = _Chunks()
    with pa.ipc.new_stream(pa.PythonFile(chunks, mode="w"), schema) as writer:
        for path in paths:
            with pa.memory_map(path) as source:
                for batch in pa.ipc.open_stream(source):
                    arrays = [
                        batch.column(name) if name in batch.schema.names else pa.nulls(batch.num_rows, field.type)
                        for name, field in zip(schema.names, schema, strict=True)
                    ]
                    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            yield chunks.take()
    yield chunks.take()


class _Chunks:
    """A write-only file that hands what was written to whoever takes it."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    # clickhouse-connect prefixes chDB errors with a wrapper line and repeats the code; keep
    # the first line that carries ClickHouse's own message.
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return type(exc).__name__


class Store:
    """A connection to the Tracehouse database; thread-safe for one writer plus readers."""

    def __init__(self, dsn: str, *, lazy: bool = False, readers: int = 1) -> None:
        """`lazy` (server stores only): don't connect yet; `connect()` does, later.
        `readers`: read connections, each running one query at a time (see set_readers)."""
        self.dsn = DSN.parse(dsn)
        self._lock = threading.Lock()
        self._dir_lock: int | None = None
        if self.dsn.kind == "chdb":
            self._dir_lock = self._lock_directory()
        self._client = None if lazy and self.dsn.kind == "http" else self._connect()
        # Reads get connections of their own, so a long query never holds up inserts; several,
        # so that one slow query does not hold up the others.
        self._idle_readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._reader_slots = threading.BoundedSemaphore(max(1, readers))

    def set_readers(self, count: int) -> None:
        """Allow `count` queries at once (one connection each); call before any query runs."""
        self._reader_slots = threading.BoundedSemaphore(max(1, count))

    def _lock_directory(self) -> int:
        """Take the embedded store's directory lock, so a second opener gets a clear error.

        chDB fails obscurely when two processes open one directory; an flock of our own turns
        that into a message that says what to do. The kernel drops it when the process dies.
        """
        assert self.dsn.path is not None
        self.dsn.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dsn.path / ".tracehouse.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"the embedded store {self.dsn.path} is in use by another process (a running "
                "`tracehouse serve`?); reach it through that server with --server URL"
            ) from None
        return fd

    def _connect(self) -> Any:
        d = self.dsn
        try:
            if d.kind == "chdb":
                assert d.path is not None
                d.path.mkdir(parents=True, exist_ok=True)
                client = clickhouse_connect.get_client(dsn=f"chdb://{d.path}")
                client.command(f"CREATE DATABASE IF NOT EXISTS {schema.DATABASE}")
                client.database = schema.DATABASE  # so `SELECT ... FROM otel_traces` works
                return client
            client = clickhouse_connect.get_client(
                host=d.host,
                port=d.port,
                username=d.username,
                password=d.password,
                secure=d.secure,
                connect_timeout=10,
                send_receive_timeout=120,
            )
            client.command(f"CREATE DATABASE IF NOT EXISTS {schema.DATABASE}")
            client.database = schema.DATABASE
            return client
        except Exception as exc:  # connection refused, bad credentials, chDB load failures
            self._release_directory()
            raise StoreError(f"cannot open store {d.display()}: {_message(exc)}") from exc

    def connect(self) -> None:
        """Open the write connection a lazy start left closed; raises StoreError."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()

    def _writer(self) -> Any:
        if self._client is None:
            raise StoreUnavailableError(f"not connected to the store {self.dsn.display()} yet")
        return self._client

    def _release_directory(self) -> None:
        if self._dir_lock is not None:
            os.close(self._dir_lock)
            self._dir_lock = None

    # -- schema -----------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply the migrations this store has not seen yet; returns the versions applied."""
        for stmt in ddl.bookkeeping_statements():
            self.command(stmt)
        done = {int(r[0]) for r in self.query(f"SELECT Version FROM {schema.DATABASE}.schema_migrations")[1]}
        pending = [m for m in ddl.migrations() if m.version not in done]
        if pending and self._has_cluster_schema():
            # Single-node DDL here would put plain tables on one node of a cluster (store/ddl.py).
            raise StoreError(
                f"the store has a cluster schema and lacks migrations {[m.version for m in pending]}: apply "
                "them with `tracehouse schema --cluster NAME --store DSN` before starting collectors"
            )
        for m in pending:
            for stmt in m.statements():
                self.command(stmt)
            self.command(
                f"INSERT INTO {schema.DATABASE}.schema_migrations (Version, Description) VALUES "
                f"({m.version}, %(d)s)",
                parameters={"d": m.description},
            )
        return [m.version for m in pending]

    def _has_cluster_schema(self) -> bool:
        """Whether `tracehouse schema --cluster` made this store (its bookkeeping is replicated)."""
        rows = self.query(
            "SELECT engine FROM system.tables WHERE database = %(db)s AND name = 'schema_migrations'",
            parameters={"db": schema.DATABASE},
        )[1]
        return bool(rows) and str(rows[0][0]).startswith("Replicated")

    # -- statements -------------------------------------------------------------------------

    def command(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict | None = None) -> Any:
        try:
            with self._lock:
                return self._writer().command(sql, parameters=parameters, settings=settings)
        except ClickHouseError as exc:
            raise StoreError(_message(exc)) from exc

    def query(
        self,
        sql: str,
        parameters: dict[str, Any] | None = None,
        settings: dict | None = None,
        *,
        describe_empty: bool = True,
    ) -> tuple[list[str], list[tuple]]:
        """Run a SELECT on the read connection; returns (column names, rows). An empty result
        names its columns only with `describe_empty` (it costs a second statement)."""
        try:
            with self._reader() as reader:
                result = reader.query(sql, parameters=parameters, settings=settings)
                columns, rows = list(result.column_names), list(result.result_rows)
                if not columns and not rows and describe_empty:
                    columns = self._result_columns(reader, sql, parameters, settings)
            return columns, rows
        except ClickHouseError as exc:
            raise StoreError(_message(exc)) from exc

    @staticmethod
    def _result_columns(reader: Any, sql: str, parameters: dict[str, Any] | None, settings: dict | None) -> list[str]:
        """The column names of a query that returned no rows: chDB sends no header block for
        an empty result, so ask ClickHouse to describe it (not run it). [] for a statement
        that is not a query (SHOW, EXPLAIN …)."""
        statement = sql.strip().rstrip(";").strip()
        try:
            described = reader.query(f"DESCRIBE TABLE ({statement}\n)", parameters=parameters, settings=settings)
        except ClickHouseError:
            return []
        return [str(row[0]) for row in described.result_rows]

    def query_bytes(
        self, sql: str, parameters: dict[str, Any] | None = None, settings: dict | None = None
    ) -> bytes:
        """Run a SELECT whose text ends in `FORMAT <fmt>`; returns ClickHouse's output as is."""
        try:
            with self._reader() as reader:
                return bytes(reader.raw_query(sql, parameters=parameters, settings=settings))
        except ClickHouseError as exc:
            raise StoreError(_message(exc)) from exc

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Any]:
        """A read connection of its own for the duration of one query."""
        with self._reader_slots:
            with self._readers_lock:
                reader = self._idle_readers.pop() if self._idle_readers else None
            if reader is None:
                reader = self._connect()
            try:
                yield reader
            except BaseException:
                # A failed statement can leave a connection's session state behind
                # (chDB keeps unread results); the next query starts on a fresh one.
                _close_quietly(reader)
                raise
            with self._readers_lock:
                self._idle_readers.append(reader)

    def insert_files(
        self, table: str, pattern: str, fmt: str, dedup_token: str, settings: dict[str, Any] | None = None
    ) -> None:
        """Insert the files matching a glob (or one path), in a ClickHouse input format, as one
        insert deduplicated by `dedup_token`.

        The embedded engine reads the files itself; a server gets them streamed over HTTP.
        Either way no row is decoded or re-encoded in Python. `settings` add to (or override)
        the insert's own (bench.ingest.store_cost compares some).
        """
        # Spans from a buggy clock may span many days; such a batch must still insert.
        insert_settings = {
            "insert_deduplication_token": dedup_token,
            "insert_deduplicate": 1,
            "max_partitions_per_insert_block": 0,
            # A replayed batch whose table insert landed but whose materialized-view insert
            # did not (crash in between) still fills the view.
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            **(settings or {}),
        }
        try:
            with self._lock:
                if self.dsn.kind == "chdb":
                    quoted = pattern.replace("\\", "\\\\").replace("'", "\\'")
                    clause = ", ".join(f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in insert_settings.items())
                    self._writer().command(
                        f"INSERT INTO {schema.DATABASE}.{table} FROM INFILE '{quoted}' SETTINGS {clause} FORMAT {fmt}"
                    )
                else:
                    # Text and Native blocks concatenate; Arrow streams are merged into one.
                    body = _arrow_stream(pattern) if fmt == "ArrowStream" else _read_files(pattern)
                    self._writer().raw_insert(
                        f"{schema.DATABASE}.{table}", insert_block=body, fmt=fmt, settings=insert_settings
                    )
        except Exception as exc:  # network errors come as several types; classify by content
            if is_transient(exc):
                raise StoreUnavailableError(_message(exc)) from exc
            raise StoreError(_message(exc)) from exc

    def close(self) -> None:
        with self._lock, self._readers_lock:
            for client in (*self._idle_readers, self._client):
                _close_quietly(client)
            self._idle_readers.clear()
            self._release_directory()


def _close_quietly(client: Any) -> None:
    try:
        if client is not None:
            client.close()
    except Exception:  # the connection is being thrown away, or we are shutting down anyway
        pass
