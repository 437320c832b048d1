"""`tracehouse.Client`: a running collector's data as DataFrames, for notebooks.

    client = tracehouse.Client()                  # TRACEHOUSE_SERVER, else http://127.0.0.1:4318
    runs = client.runs(experiment="mnist")        # one row per run: params.*, metrics.*, tags.*
    cost = client.query("cost", by=["day", "model"], since="30d")
    spans = client.sql("SELECT * FROM otel_traces LIMIT 10", as_="polars")

The client speaks the collector's REST API only (never the store), so it works against a
remote server and with read-scoped API keys, and every check and limit of the server applies.
Answers that can be large (sql, query, metric_history) travel as Arrow IPC streams written by ClickHouse;
the small structured ones (runs, a trace, compare, the traces list) as the REST JSON, turned
into typed columns here. Types are described in tracehouse._frames and docs/client.md.

pandas, pyarrow and polars are optional: `pip install 'tracehouse[pandas]'` (or `[polars]`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from tracehouse import _config
from tracehouse._frames import (
    Columns,
    Output,
    check_output,
    convert,
    read_stream,
    require,
    utc_text,
)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
AGGREGATES = ("latency", "cost", "accuracy", "errors")
TRACES_PAGE = 1000  # the collector's largest page of traces


class TracehouseError(Exception):
    """The collector refused a request or could not be reached; `str()` is its message."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status  # the HTTP status, None when the collector was not reached


class Client:
    """Reads a Tracehouse collector into pandas (default), polars or pyarrow.

    `url`: the collector's HTTP address (default TRACEHOUSE_SERVER, else the local collector);
    `api_key`: sent as a bearer token (default TRACEHOUSE_API_KEY); `output`: what methods
    return unless their `as_` says otherwise: "pandas", "polars" or "arrow" (a pyarrow Table).
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        output: Output = "pandas",
        timeout: float = 300.0,
    ) -> None:
        self.url = (url or os.environ.get("TRACEHOUSE_SERVER") or _config.DEFAULT_ENDPOINT).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("TRACEHOUSE_API_KEY") or None
        self.output = check_output(output)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"tracehouse.Client({self.url!r})"

    # -- the reads ------------------------------------------------------------------------

    def sql(self, statement: str, *, as_: Output | None = None) -> Any:
        """The result of one read-only statement (the SQL console's checks and limits)."""
        output = self._output(as_)
        body = self._request("POST", "/api/v1/sql", {"sql": statement}, arrow=True)
        return convert(read_stream(body, output), output)

    def query(
        self,
        kind: str,
        by: Sequence[str] | str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        where: str | None = None,
        service: str | None = None,
        *,
        all_spans: bool = False,
        plan: str = "auto",
        as_: Output | None = None,
    ) -> Any:
        """An aggregate, as `tracehouse query KIND`: latency, cost, accuracy or errors, grouped
        `by` dimensions (model, provider, service, operation, run, experiment, day, hour, ...)."""
        output = self._output(as_)
        if kind not in AGGREGATES:
            raise ValueError(f"kind: use one of {', '.join(AGGREGATES)}, got {kind!r}")
        params = {
            "by": [by] if isinstance(by, str) else list(by or []),
            "since": utc_text(since),
            "until": utc_text(until),
            "where": where,
            "service": service,
            "all_spans": all_spans,
            "plan": plan,
            "format": "arrow",
        }
        body = self._request("POST", f"/api/v1/query/{kind}", params, arrow=True)
        return convert(read_stream(body, output), output)

    def traces(
        self,
        where: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        service: str | None = None,
        limit: int | None = 1000,
        *,
        as_: Output | None = None,
    ) -> Any:
        """Traces newest first, one summary row each; `limit=None` pages through all of them."""
        output = self._output(as_)
        rows: list[list[Any]] = []
        columns: list[str] = []
        cursor = None
        while limit is None or len(rows) < limit:
            page_size = TRACES_PAGE if limit is None else min(TRACES_PAGE, limit - len(rows))
            params = {"where": where, "since": utc_text(since), "until": utc_text(until), "service": service}
            page = self._json("POST", "/api/v1/traces", {**params, "limit": page_size, "cursor": cursor})
            columns = page["columns"]
            rows.extend(page["rows"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return _traces_frame(columns, rows, output)

    def trace(self, trace_id: str, *, as_: Output | None = None) -> Any:
        """The spans of one trace in tree order (depth first), one row each, with parent ids,
        depth, attributes and resource as dicts, events and links as lists."""
        output = self._output(as_)
        tree = self._json("GET", f"/api/v1/traces/{urllib.parse.quote(trace_id, safe='')}")
        return _spans_frame(tree, output)

    def runs(
        self,
        experiment: str | None = None,
        where: str | None = None,
        limit: int = 1000,
        *,
        as_: Output | None = None,
    ) -> Any:
        """One row per run, newest first, like mlflow.search_runs: run facts, then a column per
        param (`params.lr`, its logged type), metric (`metrics.loss`, the last value) and tag."""
        output = self._output(as_)
        query = {"experiment": experiment, "where": where, "limit": limit}
        return _runs_frame(self._json("GET", "/api/v1/runs", query=query), output)

    def metric_history(
        self, run_id: str, key: str | None = None, *, all_points: bool = False, as_: Output | None = None
    ) -> Any:
        """Every step of a run's metric (all metrics without `key`): key, step, value,
        timestamp; a step logged twice shows its latest value unless `all_points`."""
        output = self._output(as_)
        query = {"key": key, "all": "1" if all_points else None, "format": "arrow"}
        path = f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/metrics"
        return convert(read_stream(self._request("GET", path, query=query, arrow=True), output), output)

    def compare(self, run_ids: Sequence[str], *, diff_only: bool = False, as_: Output | None = None) -> Any:
        """The table of `tracehouse runs compare`: section, key, one column per run (its id's
        first 8 digits), then delta_<id> against the first run."""
        output = self._output(as_)
        query = {"ids": ",".join(run_ids), "diff_only": "1" if diff_only else None}
        answer = self._json("GET", "/api/v1/runs/compare", query=query)
        cols = Columns(output)
        for i, name in enumerate(answer["columns"]):
            cols.add(name, [_number(row[i]) for row in answer["rows"]])
        return convert(cols.table(), output, cols.mixed)

    def evals(self, run_id: str, dataset: str | None = None, *, as_: Output | None = None) -> Any:
        """A run's eval examples, one row each: dataset, example_id, inputs, outputs, references,
        metadata (their JSON values), a column per score (`scores.NAME`), trace_ids and
        annotations (lists), created, updated."""
        output = self._output(as_)
        path = f"/api/v1/runs/{urllib.parse.quote(run_id, safe='')}/evals"
        return _evals_frame(self._json("GET", path, query={"dataset": dataset}), output)

    def compare_evals(
        self,
        run_ids: Sequence[str],
        *,
        dataset: str | None = None,
        change: str | None = None,
        score: str | None = None,
        as_: Output | None = None,
    ) -> Any:
        """The table of `tracehouse runs compare --evals`: dataset, example_id, per score each
        run's value (`NAME@<id8>`) and each later run's delta (`delta_NAME@<id8>`), then each
        later run's change (worse, better, same, missing); `change` keeps one kind."""
        output = self._output(as_)
        query = {"ids": ",".join(run_ids), "dataset": dataset, "change": change, "score": score}
        answer = self._json("GET", "/api/v1/evals/compare", query=query)
        cols = Columns(output)
        labels = answer["labels"]
        cols.add("dataset", [e["dataset"] for e in answer["examples"]], None)
        cols.add("example_id", [e["example_id"] for e in answer["examples"]], None)
        for name in answer["scores"]:
            for i, label in enumerate(labels):
                runs = [e["runs"][i] for e in answer["examples"]]
                cols.add(f"{name}@{label}", [r["scores"].get(name) if r else None for r in runs], None)
            for i, label in enumerate(labels[1:]):
                cols.add(f"delta_{name}@{label}", [e["deltas"][i].get(name) for e in answer["examples"]], None)
        for i, label in enumerate(labels[1:]):
            cols.add(f"change@{label}", [e["changes"][i] for e in answer["examples"]], None)
        return convert(cols.table(), output, cols.mixed)

    # -- transport ------------------------------------------------------------------------

    def _output(self, as_: Output | None) -> Output:
        output = check_output(as_ or self.output)
        # before any request: a missing extra is said at once
        require("pyarrow", output)
        if output != "arrow":
            require(output, output)
        return output

    def _json(
        self, method: str, path: str, body: dict[str, Any] | None = None, query: dict[str, Any] | None = None
    ) -> Any:
        return json.loads(self._request(method, path, body, query=query))

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        query: dict[str, Any] | None = None,
        arrow: bool = False,
    ) -> bytes:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": ARROW_STREAM if arrow else "application/json"}
        data = None
        if body is not None:
            data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: bytes = response.read()
                return payload
        except urllib.error.HTTPError as exc:
            raise _refusal(exc, has_key=bool(self.api_key)) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TracehouseError(
                f"cannot reach the collector at {self.url}: {reason} (is `tracehouse serve` running? "
                "set TRACEHOUSE_SERVER or Client(url=...))"
            ) from None


def _refusal(exc: urllib.error.HTTPError, has_key: bool) -> TracehouseError:
    raw = exc.read()
    try:
        message = json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip() or str(exc.reason)
    if exc.code == 401 and not has_key:
        message += " (no API key was sent: set TRACEHOUSE_API_KEY or Client(api_key=...))"
    return TracehouseError(message, exc.code)


def _number(value: Any) -> Any:
    """The JSON answers write non-finite floats as text ("inf", "nan")."""
    if value in ("inf", "-inf", "nan"):
        return float(value)
    return value


# -- the JSON answers as typed tables -------------------------------------------------------


def _types(output: str) -> Any:
    """pyarrow, and the types of the JSON answers' times and costs."""
    pa = require("pyarrow", output)
    # the collector's JSON times carry microseconds; costs are sums of Decimal64(12)
    return pa, pa.timestamp("us", "UTC"), pa.decimal128(38, 12)


def _traces_frame(columns: list[str], rows: list[list[Any]], output: str) -> Any:
    pa, time, money = _types(output)
    types = {
        "start_time": time,
        "latency_ms": pa.float64(),
        "spans": pa.uint64(),
        "llm_calls": pa.uint64(),
        "models": pa.list_(pa.string()),
        "input_tokens": pa.uint64(),
        "output_tokens": pa.uint64(),
        "total_tokens": pa.uint64(),
        "cost_usd": money,
        "scores": pa.map_(pa.string(), pa.float64()),
    }
    cols = Columns(output)
    for i, name in enumerate(columns):
        values = [row[i] for row in rows]
        if name == "cost_usd":
            values = [None if v is None else decimal.Decimal(str(v)) for v in values]
        if name == "scores":
            values = [None if v is None else {k: _number(x) for k, x in v.items()} for v in values]
        cols.add(name, values, types.get(name, pa.string()))
    return convert(cols.table(), output, cols.mixed)


def _spans_frame(tree: dict[str, Any], output: str) -> Any:
    pa, time, money = _types(output)
    flat: list[dict[str, Any]] = []
    stack = [(0, s) for s in reversed(tree["spans"])]
    while stack:  # depth first in start order, as the collector's tree; agents nest deeply
        depth, span = stack.pop()
        flat.append({**span, "depth": depth, "trace_id": tree["trace_id"]})
        stack.extend((depth + 1, c) for c in reversed(span["children"]))
    text_map = pa.map_(pa.string(), pa.string())
    for span in flat:
        span["cost_usd"] = decimal.Decimal(str(span["cost_usd"]))
        for key in ("input", "output", "tool", "error"):
            if span.get(key) is not None and not isinstance(span[key], str):
                span[key] = json.dumps(span[key])
    schema: dict[str, Any] = {
        "trace_id": pa.string(),
        "span_id": pa.string(),
        "parent_span_id": pa.string(),
        "depth": pa.int32(),
        "name": pa.string(),
        "kind": pa.string(),
        "service": pa.string(),
        "start_time": time,
        "offset_ms": pa.float64(),
        "duration_ms": pa.float64(),
        "status": pa.string(),
        "status_message": pa.string(),
        "operation": pa.string(),
        "provider": pa.string(),
        "model": pa.string(),
        "request_model": pa.string(),
        "input_tokens": pa.uint64(),
        "output_tokens": pa.uint64(),
        "cache_read_tokens": pa.uint64(),
        "cache_write_tokens": pa.uint64(),
        "reasoning_tokens": pa.uint64(),
        "total_tokens": pa.uint64(),
        "tokens_estimated": pa.bool_(),
        "cost_usd": money,
        "session_id": pa.string(),
        "user_id": pa.string(),
        "run_id": pa.string(),
        "input": pa.string(),
        "output": pa.string(),
        "tool": pa.string(),
        "error": pa.string(),
        "orphan": pa.bool_(),
        "scope": pa.string(),
        "attributes": text_map,
        "resource": text_map,
        "events": pa.list_(
            pa.struct([("name", pa.string()), ("offset_ms", pa.float64()), ("attributes", text_map)])
        ),
        "links": pa.list_(pa.struct([("trace_id", pa.string()), ("span_id", pa.string())])),
    }
    cols = Columns(output)
    for name, type_ in schema.items():
        cols.add(name, [s.get(name) for s in flat], type_)
    return convert(cols.table(), output, cols.mixed)


def _evals_frame(examples: list[dict[str, Any]], output: str) -> Any:
    pa, time, _ = _types(output)
    cols = Columns(output)
    cols.add("dataset", [e["dataset"] for e in examples], pa.string())
    cols.add("example_id", [e["example_id"] for e in examples], pa.string())
    for field in ("inputs", "outputs", "references", "metadata"):
        cols.add(field, [e.get(field) for e in examples])
    for name in sorted({n for e in examples for n in e["scores"]}):
        cols.add(f"scores.{name}", [e["scores"].get(name) for e in examples], pa.float64())
    cols.add("trace_ids", [e["trace_ids"] for e in examples], pa.list_(pa.string()))
    cols.add("annotations", [e.get("annotations") or [] for e in examples])
    cols.add("created", [e["created"] for e in examples], time)
    cols.add("updated", [e["updated"] for e in examples], time)
    return convert(cols.table(), output, cols.mixed)


def _runs_frame(runs: list[dict[str, Any]], output: str) -> Any:
    pa, time, _ = _types(output)
    string = pa.string()
    cols = Columns(output)
    for name, source, type_ in (
        ("run_id", "id", string),
        ("experiment", "experiment", string),
        ("name", "name", string),
        ("status", "status", string),
        ("start", "start", time),
        ("end", "end", time),
        ("duration_s", "duration_s", pa.float64()),
        ("parent_id", "parent_id", string),
        ("service", "service", string),
    ):
        cols.add(name, [r.get(source) for r in runs], type_)
    for section, type_ in (("params", None), ("metrics", pa.float64()), ("tags", string)):
        for key in sorted({k for r in runs for k in r.get(section) or {}}):
            values = [_number((r.get(section) or {}).get(key)) for r in runs]
            cols.add(f"{section}.{key}", values, type_)
    return convert(cols.table(), output, cols.mixed)
