"""OTLP messages -> typed rows, one dict per row keyed by the ClickHouse column names.

Values follow the OpenTelemetry Collector's ClickHouse exporter: ids as lowercase hex,
SpanKind and StatusCode as its strings ("Server", "Error"), attribute values as strings
(ints in decimal, bools as true/false, arrays and maps as JSON, bytes as base64), Duration in
nanoseconds. Timestamps are rendered as ClickHouse DateTime64(9) text.

Every row that leaves this module is insertable: a span whose ids or timestamps ClickHouse
could not store is rejected here (and counted for OTLP partial success) rather than failing
the batch it would have joined.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

# DateTime64(9) holds nanoseconds since the epoch in an Int64: up to 2262-04-11.
MAX_TIMESTAMP_NS = 9_223_372_036_854_775_807
TRUNCATED_ATTRIBUTE = "tracehouse.truncated"

SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES = ("Unset", "Ok", "Error")

_SECOND_PREFIX: dict[int, str] = {}


def format_timestamp(ns: int) -> str:
    """Nanoseconds since the epoch -> 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' (UTC)."""
    sec, frac = divmod(ns, 1_000_000_000)
    prefix = _SECOND_PREFIX.get(sec)
    if prefix is None:
        if len(_SECOND_PREFIX) > 65536:
            _SECOND_PREFIX.clear()
        t = time.gmtime(sec)
        prefix = f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d} {t[3]:02d}:{t[4]:02d}:{t[5]:02d}"
        _SECOND_PREFIX[sec] = prefix
    return f"{prefix}.{frac:09d}"


@dataclass
class Limits:
    max_attribute_bytes: int = 64 * 1024


@dataclass
class Rows:
    """The rows decoded from one request, per table, and what was rejected."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < 5 and reason not in self.errors:
            self.errors.append(reason)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.tables.values())


# -- attribute values ------------------------------------------------------------------------


def _double(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == int(v) and abs(v) < 1e16:
        return str(int(v))
    return repr(v)


def any_value_to_py(v: Any) -> Any:
    """An AnyValue as a plain Python value (for JSON rendering of arrays and maps)."""
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        d = v.double_value
        return d if math.isfinite(d) else _double(d)
    if kind == "array_value":
        return [any_value_to_py(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_py(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def any_value_to_str(v: Any) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "double_value":
        return _double(v.double_value)
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    if kind == "array_value":
        return orjson.dumps([any_value_to_py(x) for x in v.array_value.values]).decode()
    if kind == "kvlist_value":
        return orjson.dumps({kv.key: any_value_to_py(kv.value) for kv in v.kvlist_value.values}).decode()
    return ""


def _truncate(value: str, limit: int) -> str:
    return value.encode("utf-8")[:limit].decode("utf-8", "ignore")


def attributes(kvs: Any, limit: int) -> dict[str, str]:
    """KeyValue list -> {key: string}; values over `limit` bytes are cut and the key recorded.

    The hot path of ingest (every attribute of every span): most values are non-empty strings,
    read in one field access; whether any value is long enough to need measuring is asked
    once per list, by a C-level max(), not per value.
    """
    out: dict[str, str] = {}
    for kv in kvs:
        v = kv.value
        out[kv.key] = v.string_value or any_value_to_str(v)
    if out and max(map(len, out.values())) > limit // 4:
        return _attributes_cut(kvs, limit)
    return out


def _attributes_cut(kvs: Any, limit: int) -> dict[str, str]:
    """attributes() for a list holding a value that may be over `limit` bytes."""
    out: dict[str, str] = {}
    truncated: list[str] = []
    # A str of n characters is at most 4n UTF-8 bytes: only long values need encoding to measure.
    quick = limit // 4
    for kv in kvs:
        v = kv.value
        # Most attributes are non-empty strings: read that field first, dispatch only if empty.
        s = v.string_value
        if not s and v.WhichOneof("value") != "string_value":
            s = any_value_to_str(v)
        if len(s) > quick and len(s.encode("utf-8")) > limit:
            s = _truncate(s, limit)
            truncated.append(kv.key)
        out[kv.key] = s
    if truncated:
        out[TRUNCATED_ATTRIBUTE] = ",".join(truncated)
    return out


# -- traces ----------------------------------------------------------------------------------


def _span_problem(
    trace_id: bytes, span_id: bytes, parent_span_id: bytes, start: int, end: int, events: Any
) -> str | None:
    if len(trace_id) != 16 or not any(trace_id):
        return "trace_id must be 16 bytes and not all zero"
    if len(span_id) != 8 or not any(span_id):
        return "span_id must be 8 bytes and not all zero"
    if parent_span_id and len(parent_span_id) != 8:
        return "parent_span_id must be empty or 8 bytes"
    if start > MAX_TIMESTAMP_NS or end > MAX_TIMESTAMP_NS:
        return "timestamp beyond the year 2262"
    if events and any(ev.time_unix_nano > MAX_TIMESTAMP_NS for ev in events):
        return "event timestamp beyond the year 2262"
    if end < start:
        # Stored, it would read as an instant call and hide a clock or SDK bug; the sender
        # learns of it from partial_success instead.
        return "end_time_unix_nano before start_time_unix_nano"
    return None


def _resource(resource: Any, limit: int) -> tuple[dict[str, str], str]:
    attrs = attributes(resource.attributes, limit)
    return attrs, attrs.get("service.name", "")


def trace_rows(request: Any, limits: Limits, rows: Rows | None = None) -> Rows:
    rows = rows or Rows()
    limit = limits.max_attribute_bytes
    out = rows.tables.setdefault("otel_traces", [])
    for rs in request.resource_spans:
        res_attrs, service = _resource(rs.resource, limit)
        for ss in rs.scope_spans:
            scope_name = ss.scope.name
            scope_version = ss.scope.version
            for span in ss.spans:
                # Each field read once: a protobuf field access costs more than a local.
                trace_id = span.trace_id
                span_id = span.span_id
                parent_span_id = span.parent_span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                events = span.events
                # What a valid span satisfies, asked inline; the reason only for one that fails.
                if (
                    events
                    or not start <= end <= MAX_TIMESTAMP_NS
                    or len(trace_id) != 16
                    or len(span_id) != 8
                    or (parent_span_id and len(parent_span_id) != 8)
                    or not any(trace_id)
                    or not any(span_id)
                ):
                    problem = _span_problem(trace_id, span_id, parent_span_id, start, end, events)
                    if problem:
                        rows.reject(problem)
                        continue
                kind = span.kind
                status = span.status
                code = status.code
                row = {
                    "Timestamp": format_timestamp(start),
                    "TraceId": trace_id.hex(),
                    "SpanId": span_id.hex(),
                    "SpanName": span.name,
                    "SpanKind": SPAN_KINDS[kind] if 0 <= kind < 6 else "Unspecified",
                    "ServiceName": service,
                    "ResourceAttributes": res_attrs,
                    "ScopeName": scope_name,
                    "ScopeVersion": scope_version,
                    "SpanAttributes": attributes(span.attributes, limit),
                    "Duration": end - start if end > start else 0,
                    "StatusCode": STATUS_CODES[code] if 0 <= code < 3 else "Unset",
                }
                # Columns left out take their defaults ('' and []): less to encode and parse.
                if parent_span_id:
                    row["ParentSpanId"] = parent_span_id.hex()
                if span.trace_state:
                    row["TraceState"] = span.trace_state
                if status.message:
                    row["StatusMessage"] = status.message
                if events:
                    row["Events.Timestamp"] = [format_timestamp(e.time_unix_nano) for e in events]
                    row["Events.Name"] = [e.name for e in events]
                    row["Events.Attributes"] = [attributes(e.attributes, limit) for e in events]
                links = span.links
                if links:
                    row["Links.TraceId"] = [lk.trace_id.hex() for lk in links]
                    row["Links.SpanId"] = [lk.span_id.hex() for lk in links]
                    row["Links.TraceState"] = [lk.trace_state for lk in links]
                    row["Links.Attributes"] = [attributes(lk.attributes, limit) for lk in links]
                out.append(row)
    return rows


# -- logs ------------------------------------------------------------------------------------


def log_rows(request: Any, limits: Limits, rows: Rows | None = None) -> Rows:
    rows = rows or Rows()
    limit = limits.max_attribute_bytes
    out = rows.tables.setdefault("otel_logs", [])
    for rl in request.resource_logs:
        res_attrs, service = _resource(rl.resource, limit)
        for sl in rl.scope_logs:
            scope_attrs = attributes(sl.scope.attributes, limit)
            for rec in sl.log_records:
                ts = rec.time_unix_nano or rec.observed_time_unix_nano
                if ts > MAX_TIMESTAMP_NS:
                    rows.reject("log timestamp beyond the year 2262")
                    continue
                if rec.trace_id and len(rec.trace_id) != 16 or rec.span_id and len(rec.span_id) != 8:
                    rows.reject("log trace_id/span_id of the wrong length")
                    continue
                body = any_value_to_str(rec.body) if rec.HasField("body") else ""
                if len(body) > limit // 4 and len(body.encode("utf-8")) > limit:
                    body = _truncate(body, limit)
                out.append(
                    {
                        "Timestamp": format_timestamp(ts),
                        "TraceId": rec.trace_id.hex(),
                        "SpanId": rec.span_id.hex(),
                        "TraceFlags": rec.flags & 0xFF,
                        "SeverityText": rec.severity_text,
                        "SeverityNumber": max(0, min(255, rec.severity_number)),
                        "ServiceName": service,
                        "Body": body,
                        "ResourceSchemaUrl": rl.schema_url,
                        "ResourceAttributes": res_attrs,
                        "ScopeSchemaUrl": sl.schema_url,
                        "ScopeName": sl.scope.name,
                        "ScopeVersion": sl.scope.version,
                        "ScopeAttributes": scope_attrs,
                        "LogAttributes": attributes(rec.attributes, limit),
                        "EventName": getattr(rec, "event_name", ""),
                    }
                )
    return rows


# -- metrics ---------------------------------------------------------------------------------


def _exemplars(exemplars: Any, limit: int) -> dict[str, list]:
    return {
        "Exemplars.FilteredAttributes": [attributes(e.filtered_attributes, limit) for e in exemplars],
        "Exemplars.TimeUnix": [format_timestamp(min(e.time_unix_nano, MAX_TIMESTAMP_NS)) for e in exemplars],
        "Exemplars.Value": [_finite(e.as_double) if e.HasField("as_double") else float(e.as_int) for e in exemplars],
        "Exemplars.SpanId": [e.span_id.hex() for e in exemplars],
        "Exemplars.TraceId": [e.trace_id.hex() for e in exemplars],
    }


def _number(dp: Any) -> float:
    return dp.as_double if dp.WhichOneof("value") == "as_double" else float(dp.as_int)


def _finite(v: float) -> float | str:
    # JSON has no NaN/Inf literals; ClickHouse reads these strings into Float64 columns.
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def metric_rows(request: Any, limits: Limits, rows: Rows | None = None) -> Rows:
    rows = rows or Rows()
    limit = limits.max_attribute_bytes
    for rm in request.resource_metrics:
        res_attrs, service = _resource(rm.resource, limit)
        for sm in rm.scope_metrics:
            head = {
                "ResourceAttributes": res_attrs,
                "ResourceSchemaUrl": rm.schema_url,
                "ScopeName": sm.scope.name,
                "ScopeVersion": sm.scope.version,
                "ScopeAttributes": attributes(sm.scope.attributes, limit),
                "ScopeDroppedAttrCount": sm.scope.dropped_attributes_count,
                "ScopeSchemaUrl": sm.schema_url,
                "ServiceName": service,
            }
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    rows.reject(f"metric {metric.name!r} has no data")
                    continue
                base = {
                    **head,
                    "MetricName": metric.name,
                    "MetricDescription": metric.description,
                    "MetricUnit": metric.unit,
                }
                data = getattr(metric, kind)
                for dp in data.data_points:
                    if dp.time_unix_nano > MAX_TIMESTAMP_NS or dp.start_time_unix_nano > MAX_TIMESTAMP_NS:
                        rows.reject("data point timestamp beyond the year 2262")
                        continue
                    row = {
                        **base,
                        "Attributes": attributes(dp.attributes, limit),
                        "StartTimeUnix": format_timestamp(dp.start_time_unix_nano),
                        "TimeUnix": format_timestamp(dp.time_unix_nano),
                        "Flags": dp.flags,
                    }
                    if kind == "gauge":
                        row["Value"] = _finite(_number(dp))
                        row.update(_exemplars(dp.exemplars, limit))
                        rows.add("otel_metrics_gauge", row)
                    elif kind == "sum":
                        row["Value"] = _finite(_number(dp))
                        row.update(_exemplars(dp.exemplars, limit))
                        row["AggregationTemporality"] = data.aggregation_temporality
                        row["IsMonotonic"] = data.is_monotonic
                        rows.add("otel_metrics_sum", row)
                    elif kind == "histogram":
                        row.update(
                            Count=dp.count,
                            Sum=_finite(dp.sum),
                            BucketCounts=list(dp.bucket_counts),
                            ExplicitBounds=[_finite(b) for b in dp.explicit_bounds],
                            Min=_finite(dp.min),
                            Max=_finite(dp.max),
                            AggregationTemporality=data.aggregation_temporality,
                        )
                        row.update(_exemplars(dp.exemplars, limit))
                        rows.add("otel_metrics_histogram", row)
                    elif kind == "exponential_histogram":
                        row.update(
                            Count=dp.count,
                            Sum=_finite(dp.sum),
                            Scale=dp.scale,
                            ZeroCount=dp.zero_count,
                            PositiveOffset=dp.positive.offset,
                            PositiveBucketCounts=list(dp.positive.bucket_counts),
                            NegativeOffset=dp.negative.offset,
                            NegativeBucketCounts=list(dp.negative.bucket_counts),
                            Min=_finite(dp.min),
                            Max=_finite(dp.max),
                            AggregationTemporality=data.aggregation_temporality,
                        )
                        row.update(_exemplars(dp.exemplars, limit))
                        rows.add("otel_metrics_exponential_histogram", row)
                    elif kind == "summary":
                        row.update(
                            Count=dp.count,
                            Sum=_finite(dp.sum),
                            **{
                                "ValueAtQuantiles.Quantile": [_finite(q.quantile) for q in dp.quantile_values],
                                "ValueAtQuantiles.Value": [_finite(q.value) for q in dp.quantile_values],
                            },
                        )
                        rows.add("otel_metrics_summary", row)
    return rows


ROW_BUILDERS = {"traces": trace_rows, "logs": log_rows, "metrics": metric_rows}
