"""Collector settings: one place that turns flags and TRACEHOUSE_* variables into values.

A flag wins over its variable, a variable over the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

# TRACEHOUSE_INSERT_FORMAT: "json" (JSONEachRow, which ClickHouse parses), "native" (its own
# column layout, copied in) or "arrow" (an Arrow stream, converted a column at a time).
INSERT_FORMATS = ("json", "native", "arrow")

DEFAULT_GRPC_PORT = 4317
DEFAULT_HTTP_PORT = 4318
DEFAULT_HOST = "127.0.0.1"
# Where clients (`tracehouse demo`, the banner's hints) find a collector started with the defaults.
DEFAULT_SERVER = f"http://{DEFAULT_HOST}:{DEFAULT_HTTP_PORT}"


def embedded_store_home(dsn: str | None) -> Path | None:
    """The directory holding an embedded store (`chdb:///D/data` -> `D`), where the files that
    belong with it (queue, artifacts) go; None for a server store or no store."""
    parts = urlsplit(dsn or "")
    if parts.scheme != "chdb":
        return None
    raw = unquote(parts.netloc + parts.path)
    return Path(raw).expanduser().absolute().parent if raw.strip("/") else None


def resolve_data_dir(data_dir: str | None = None, store: str | None = None) -> Path:
    """The data directory, flags before variables: `--data-dir`, else beside the embedded
    `--store`, else TRACEHOUSE_DATA_DIR, else beside an embedded TRACEHOUSE_STORE, else
    ~/.tracehouse. So a command told to use a store keeps its files with that store."""
    chosen = (
        data_dir
        or embedded_store_home(store)
        or os.environ.get("TRACEHOUSE_DATA_DIR")
        or embedded_store_home(os.environ.get("TRACEHOUSE_STORE"))
        or Path.home() / ".tracehouse"
    )
    return Path(chosen).expanduser()


def default_store(data_dir: Path) -> str:
    return os.environ.get("TRACEHOUSE_STORE") or f"chdb://{data_dir / 'data'}"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"tracehouse: {name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"tracehouse: {name}={raw!r} is not a number") from None
    if not value > 0:
        raise SystemExit(f"tracehouse: {name}={raw!r} must be more than 0")
    return value


@dataclass
class ServeSettings:
    """Everything `tracehouse serve` needs to know."""

    store: str
    data_dir: Path
    host: str = DEFAULT_HOST
    # On an empty store with a terminal on stdin, ask whether to load the demo data (make run).
    offer_demo: bool = False
    grpc_port: int = DEFAULT_GRPC_PORT
    http_port: int = DEFAULT_HTTP_PORT
    # Decoding OTLP into rows is CPU-bound Python; it runs in this many worker processes so
    # that the one process owning the store is not bound by the GIL.
    workers: int = 2
    # Group commit: a flush happens when this many rows are pending or the oldest pending row
    # has waited max_delay_ms. ClickHouse pays per part, so small inserts cost twice per row.
    batch_rows: int = 20_000
    max_delay_ms: int = 200
    # Under load, batches queued while an insert runs are merged into the next insert, up to
    # this many rows; at most batch_rows turns merging off (one insert per batch).
    max_insert_rows: int = 100_000
    # Backpressure: above this many rows accepted but not yet inserted, exports are refused
    # with RESOURCE_EXHAUSTED / HTTP 429 so that SDKs retry later.
    max_pending_rows: int = 400_000
    # Bytes of request bodies being decoded at once; above it exports are refused like an
    # overloaded queue, so a flood of senders cannot grow the decoding backlog without bound.
    max_decoding_bytes: int = 256 * 1024 * 1024
    # An export not durable after this long is answered UNAVAILABLE / HTTP 503 (its rows stay
    # queued, and a retry of the same request waits for them instead of adding them again).
    ack_timeout_s: float = 8.0
    # The on-disk queue of rows accepted but not yet inserted (store down or slow): exports are
    # acknowledged once queued; beyond this many bytes they get RESOURCE_EXHAUSTED / HTTP 429.
    max_queue_bytes: int = 1 << 30
    # An insert running longer than this marks the store slow: waiting exports are then
    # acknowledged from the queue instead of waiting for their insert.
    slow_insert_ms: int = 6000
    # fsync queued rows (files and directories) before acknowledging. A killed process loses nothing either
    # way (the page cache survives it); fsync also covers power loss and kernel crashes.
    journal_fsync: bool = True
    # Attribute values longer than this (bytes of UTF-8) are truncated and marked.
    max_attribute_bytes: int = 64 * 1024
    # Largest accepted request, after decompression.
    max_request_bytes: int = 64 * 1024 * 1024
    # Largest request as sent (a gRPC message, an HTTP body before decompression). 4 MiB is
    # the OpenTelemetry Collector's default receive limit, so exporters already keep under it.
    max_message_bytes: int = 4 * 1024 * 1024
    # Request bytes this process may hold at once, received or being received, over all
    # connections; beyond it exports are refused with RESOURCE_EXHAUSTED / HTTP 429 before
    # their bodies are read. A gRPC call counts max_message_bytes until its message arrives.
    max_inflight_bytes: int = 64 * 1024 * 1024
    # Concurrent gRPC calls per connection (HTTP/2 streams): with max_message_bytes, what one
    # connection can make this process buffer.
    grpc_max_streams: int = 16
    # Slow and idle connections. HTTP: the request line and headers must arrive within
    # http_header_timeout_s, a body within http_body_timeout_s; an idle keep-alive connection
    # is closed after http_idle_timeout_s. gRPC: a connection must finish its TLS/HTTP2
    # handshake within http_header_timeout_s, is closed after grpc_idle_timeout_s without
    # calls and, gracefully, after grpc_max_connection_age_s.
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    http_idle_timeout_s: float = 60.0
    grpc_idle_timeout_s: float = 300.0
    grpc_max_connection_age_s: float = 3600.0
    # Readers (REST, SQL, gRPC Query, UI): queries running at once, and queries waiting for
    # one of those slots; beyond that a reader is told "busy, retry" (HTTP 503 + Retry-After,
    # gRPC RESOURCE_EXHAUSTED). Readers never share a thread or a connection with ingest.
    max_queries: int = 4
    max_queued_queries: int = 16
    # Queries running at once for one API key (0: only the global limit).
    max_queries_per_key: int = 0
    # A user price file (YAML or JSON) adding or overriding model prices.
    prices: str | None = None
    # The LLM processor (conventions, tokens, cost). Off only to measure what it costs.
    llm_processor: bool = True
    # How spans travel to ClickHouse (processors/encoding.py): one of INSERT_FORMATS. Other
    # tables are always JSON.
    insert_format: str = "json"
    # Security (see server/auth.py, server/tls.py). Keys stay out of repr() so they never reach a log.
    api_keys: str | None = field(default=None, repr=False)  # comma-separated
    api_keys_file: str | None = None  # one key per line, '#' comments
    tls_cert: str | None = None  # PEM certificate (chain) file; with tls_key, serve TLS
    tls_key: str | None = None

    @classmethod
    def from_env(cls, **overrides: object) -> ServeSettings:
        store_flag, data_dir_flag = (str(overrides.pop(k, None) or "") for k in ("store", "data_dir"))
        data_dir = resolve_data_dir(data_dir_flag, store_flag)
        store = store_flag or default_store(data_dir)
        values: dict[str, object] = {
            "host": os.environ.get("TRACEHOUSE_HOST") or DEFAULT_HOST,
            "grpc_port": _env_int("TRACEHOUSE_GRPC_PORT", DEFAULT_GRPC_PORT),
            "http_port": _env_int("TRACEHOUSE_HTTP_PORT", DEFAULT_HTTP_PORT),
            "workers": _env_int("TRACEHOUSE_WORKERS", 2),
            "batch_rows": _env_int("TRACEHOUSE_BATCH_ROWS", 20_000),
            "max_delay_ms": _env_int("TRACEHOUSE_MAX_DELAY_MS", 200),
            "max_insert_rows": _env_int("TRACEHOUSE_MAX_INSERT_ROWS", 100_000),
            "max_pending_rows": _env_int("TRACEHOUSE_MAX_PENDING_ROWS", 400_000),
            "max_queue_bytes": _env_int("TRACEHOUSE_MAX_QUEUE_BYTES", 1 << 30),
            "slow_insert_ms": _env_int("TRACEHOUSE_SLOW_INSERT_MS", 6000),
            "journal_fsync": os.environ.get("TRACEHOUSE_JOURNAL_FSYNC", "1") not in ("0", "false", "no"),
            "max_attribute_bytes": _env_int("TRACEHOUSE_MAX_ATTRIBUTE_BYTES", 64 * 1024),
            "max_request_bytes": _env_int("TRACEHOUSE_MAX_REQUEST_BYTES", 64 * 1024 * 1024),
            "max_message_bytes": _env_int("TRACEHOUSE_MAX_MESSAGE_BYTES", 4 * 1024 * 1024),
            "max_inflight_bytes": _env_int("TRACEHOUSE_MAX_INFLIGHT_BYTES", 64 * 1024 * 1024),
            "grpc_max_streams": _env_int("TRACEHOUSE_GRPC_MAX_STREAMS", 16),
            "http_header_timeout_s": _env_float("TRACEHOUSE_HTTP_HEADER_TIMEOUT_S", 10.0),
            "http_body_timeout_s": _env_float("TRACEHOUSE_HTTP_BODY_TIMEOUT_S", 30.0),
            "http_idle_timeout_s": _env_float("TRACEHOUSE_HTTP_IDLE_TIMEOUT_S", 60.0),
            "grpc_idle_timeout_s": _env_float("TRACEHOUSE_GRPC_IDLE_TIMEOUT_S", 300.0),
            "grpc_max_connection_age_s": _env_float("TRACEHOUSE_GRPC_MAX_CONNECTION_AGE_S", 3600.0),
            "max_queries": _env_int("TRACEHOUSE_MAX_QUERIES", 4),
            "max_queued_queries": _env_int("TRACEHOUSE_MAX_QUEUED_QUERIES", 16),
            "max_queries_per_key": _env_int("TRACEHOUSE_MAX_QUERIES_PER_KEY", 0),
            "prices": os.environ.get("TRACEHOUSE_PRICES") or None,
            "llm_processor": os.environ.get("TRACEHOUSE_LLM_PROCESSOR", "1")
            not in ("0", "false", "no", "off"),
            "insert_format": os.environ.get("TRACEHOUSE_INSERT_FORMAT", "json").strip().lower() or "json",
            # Set but empty is kept (and refused at start-up): security must not fail open.
            "api_keys": os.environ.get("TRACEHOUSE_API_KEYS"),
            "api_keys_file": os.environ.get("TRACEHOUSE_API_KEYS_FILE"),
            "tls_cert": os.environ.get("TRACEHOUSE_TLS_CERT"),
            "tls_key": os.environ.get("TRACEHOUSE_TLS_KEY"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(store=store, data_dir=data_dir, **values)  # type: ignore[arg-type]
        settings.check()
        return settings

    @property
    def message_limit(self) -> int:
        """Largest request read from the wire: gRPC inflates before we see a message, so
        the limit after decompression applies to it as well."""
        return min(self.max_message_bytes, self.max_request_bytes)

    def check(self) -> None:
        """Refuse limits that would make the server refuse everything."""
        for name in ("max_message_bytes", "max_inflight_bytes", "grpc_max_streams", "max_queries"):
            if getattr(self, name) <= 0:
                raise SystemExit(f"tracehouse: {name} must be more than 0, got {getattr(self, name)}")
        if self.insert_format not in INSERT_FORMATS:
            raise SystemExit(
                f"tracehouse: TRACEHOUSE_INSERT_FORMAT must be one of {', '.join(INSERT_FORMATS)}, got {self.insert_format!r}"
            )
        if self.max_queued_queries < 0 or self.max_queries_per_key < 0:
            raise SystemExit("tracehouse: max_queued_queries and max_queries_per_key cannot be negative")
        if self.max_inflight_bytes < self.message_limit:
            raise SystemExit(
                f"tracehouse: max_inflight_bytes ({self.max_inflight_bytes}) is below max_message_bytes "
                f"({self.max_message_bytes}): no request of the largest size could ever be taken"
            )
