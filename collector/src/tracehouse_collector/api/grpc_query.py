"""The gRPC `tracehouse.query.v1.Query` service (proto/tracehouse/query/v1/query.proto).

A thin layer: each RPC calls the same query module the CLI and REST call, in a worker thread
(store calls block), and maps errors to gRPC status codes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import orjson

from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2 as pb
from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2_grpc
from tracehouse_collector.api.readers import Readers, ReadersBusy
from tracehouse_collector.formatting import plain_decimal
from tracehouse_collector.query import evals, sessions, trace_list, traces
from tracehouse_collector.query.runs import RunNotFound
from tracehouse_collector.query.sql import run_readonly
from tracehouse_collector.query.values import jsonable
from tracehouse_collector.receivers.otlp_grpc import retry_metadata
from tracehouse_collector.store.client import Store, StoreError, StoreUnavailableError

log = logging.getLogger("tracehouse.grpc.query")

_INT64_MAX = (1 << 63) - 1


def to_value(v: Any) -> pb.Value:
    """One cell as a typed Value (see the Value message for what travels how)."""
    if v is None:
        return pb.Value(null_value=True)
    if isinstance(v, bool):
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v) if -_INT64_MAX - 1 <= v <= _INT64_MAX else pb.Value(string_value=str(v))
    if isinstance(v, float):
        return pb.Value(double_value=v)
    if isinstance(v, str):
        return pb.Value(string_value=v)
    if isinstance(v, (dict, list, tuple, set)):
        return pb.Value(json_value=orjson.dumps(jsonable(v)).decode())
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return pb.Value(string_value=v.isoformat() + "Z")  # the store's naive times are UTC
    if isinstance(v, decimal.Decimal):
        return pb.Value(string_value=plain_decimal(v))
    return pb.Value(string_value=str(jsonable(v)))


def to_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> pb.Table:
    table = pb.Table(columns=[pb.Column(name=c) for c in columns])
    for row in rows:
        table.rows.add(values=[to_value(v) for v in row])
    return table


def _json_or_empty(value: Any) -> str:
    return "" if value is None else orjson.dumps(jsonable(value)).decode()


def span_message(node: dict[str, Any]) -> pb.Span:
    error = node["error"] or {}
    return pb.Span(
        span_id=node["span_id"],
        parent_span_id=node["parent_span_id"],
        name=node["name"],
        kind=node["kind"],
        service=node["service"],
        start_time=node["start_time"],
        offset_ms=node["offset_ms"],
        duration_ms=node["duration_ms"],
        status=node["status"],
        status_message=node["status_message"],
        operation=node["operation"],
        provider=node["provider"],
        model=node["model"],
        request_model=node["request_model"],
        input_tokens=node["input_tokens"],
        output_tokens=node["output_tokens"],
        cache_read_tokens=node["cache_read_tokens"],
        cache_write_tokens=node["cache_write_tokens"],
        reasoning_tokens=node["reasoning_tokens"],
        total_tokens=node["total_tokens"],
        tokens_estimated=node["tokens_estimated"],
        cost_usd=format(node["cost_usd"], "f"),
        input_json=_json_or_empty(node["input"]),
        output_json=_json_or_empty(node["output"]),
        tool_calls=[
            pb.ToolCall(
                id=str(c.get("id") or ""),
                name=str(c.get("name") or ""),
                arguments_json=_json_or_empty(c.get("arguments")),
                type=str(c.get("type") or ""),
            )
            for c in node["tool_calls"]
        ],
        tool_json=_json_or_empty(node["tool"]),
        tool_definitions_json=_json_or_empty(node["tool_definitions"] or None),
        finish_reasons=node["finish_reasons"],
        content_truncated=node["content_truncated"],
        has_error=bool(node["error"]),
        error_type=error.get("type", ""),
        error_message=error.get("message", ""),
        events=[
            pb.SpanEvent(name=e["name"], offset_ms=e["offset_ms"], attributes=e["attributes"])
            for e in node["events"]
        ],
        attributes=node["attributes"],
        resource=node["resource"],
        orphan=node["orphan"],
        children=[span_message(c) for c in node["children"]],
        session_id=node["session_id"],
        user_id=node["user_id"],
        run_id=node["run_id"],
        annotations_json=orjson.dumps(node.get("annotations", [])).decode(),
    )


def trace_message(t: dict[str, Any]) -> pb.Trace:
    return pb.Trace(
        trace_id=t["trace_id"],
        start_time=t["start_time"],
        duration_ms=t["duration_ms"],
        span_count=t["span_count"],
        services=t["services"],
        status=t["status"],
        llm_calls=t["llm_calls"],
        models=t["models"],
        input_tokens=t["input_tokens"],
        output_tokens=t["output_tokens"],
        total_tokens=t["total_tokens"],
        cost_usd=format(t["cost_usd"], "f"),
        session_id=t["session_id"],
        user_id=t["user_id"],
        run_id=t["run_id"],
        scores_json=orjson.dumps(jsonable(t["scores"])).decode(),
        spans=[span_message(s) for s in t["spans"]],
        truncated=t["truncated"],
        annotations_json=orjson.dumps(t.get("annotations", [])).decode(),
    )


def session_message(s: dict[str, Any]) -> pb.Session:
    return pb.Session(
        session_id=s["session_id"],
        user_id=s["user_id"],
        first_time=s["first_time"] or "",
        last_time=s["last_time"] or "",
        traces=s["traces"],
        llm_calls=s["llm_calls"],
        total_tokens=s["total_tokens"],
        cost_usd=format(s["cost_usd"], "f"),
        turns=[
            pb.Turn(
                turn=t["turn"],
                trace_id=t["trace_id"],
                start_time=t["start_time"],
                status=t["status"],
                latency_ms=t["latency_ms"],
                models=t["models"],
                total_tokens=t["total_tokens"],
                cost_usd=format(t["cost_usd"], "f"),
                input=t["input"],
                output=t["output"],
            )
            for t in s["turns"]
        ],
    )


class QueryServicer(query_pb2_grpc.QueryServicer):
    def __init__(self, store: Store, readers: Readers, identify: Callable[[Any], int | None] | None = None) -> None:
        self.store = store
        self.readers = readers
        # Which API key a call carries, for the per-key query limit (None without keys).
        self.identify = identify

    def _key(self, context: grpc.aio.ServicerContext) -> int | None:
        if self.identify is None:
            return None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                return self.identify(value)
        return None

    async def _call(self, context: grpc.aio.ServicerContext, fn: Callable[[], Any]) -> Any:
        """Run a blocking query in a thread; errors become gRPC status codes."""
        try:
            return await self.readers.run(fn, key=self._key(context))
        except ReadersBusy as exc:
            context.set_trailing_metadata(retry_metadata(exc.retry_after_s))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except traces.NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except StoreUnavailableError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except StoreError as exc:
            # ClickHouse refused the query (bad SQL, limits) unless it says "not now".
            code = grpc.StatusCode.UNAVAILABLE if _store_down(exc) else grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, str(exc))
        except ValueError as exc:  # bad filter (FilterError is one), time, id, cursor, limit
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except NotImplementedError as exc:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
        except Exception:
            log.exception("unexpected error in a Query RPC")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the collector log")

    async def Sql(self, request: pb.SqlRequest, context: grpc.aio.ServicerContext) -> pb.Table:
        if not request.sql.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "sql is empty")
        result = await self._call(context, lambda: run_readonly(self.store, request.sql))
        return to_table(result.columns, result.rows)

    async def Aggregate(self, request: pb.AggregateRequest, context: grpc.aio.ServicerContext) -> pb.Table:
        def run() -> Any:
            try:
                from tracehouse_collector.query.aggregates import aggregate
            except ImportError:
                raise NotImplementedError(
                    "Aggregate is not available in this build (no query.aggregates)"
                ) from None
            return aggregate(
                self.store,
                request.kind,
                list(request.by),
                since=request.since or None,
                until=request.until or None,
                service=request.service or None,
                where=request.where or None,
                all_spans=request.all_spans,
                unpriced=request.unpriced,
            )

        result = await self._call(context, run)
        return to_table(result.columns, result.rows)

    async def ListTraces(
        self, request: pb.ListTracesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTracesResponse:
        listing = _trace_filters(request)

        def run() -> pb.ListTracesResponse:
            # The page and (with count) the total in one reader slot, as GET /api/v1/traces.
            page = trace_list.list_traces(
                self.store,
                limit=request.limit or None,
                cursor=request.cursor or None,
                sort=request.sort or None,
                **listing,
            )
            answer = pb.ListTracesResponse(
                table=to_table(page.columns, page.rows), next_cursor=page.next_cursor or ""
            )
            if request.count:
                answer.total = trace_list.count_traces(self.store, **listing)
            return answer

        return await self._call(context, run)

    async def TraceFacets(
        self, request: pb.TraceFacetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.TraceFacetsResponse:
        size = request.size or trace_list.FACET_VALUES
        found = await self._call(
            context, lambda: trace_list.trace_facets(self.store, size=size, **_trace_filters(request))
        )
        return pb.TraceFacetsResponse(
            facets=[
                pb.Facet(
                    field=field,
                    values=[
                        pb.FacetValue(value=v["value"], traces=v["traces"], label=v.get("label", ""))
                        for v in values
                    ],
                )
                for field, values in found.items()
            ]
        )

    async def GetTrace(self, request: pb.GetTraceRequest, context: grpc.aio.ServicerContext) -> pb.Trace:
        trace = await self._call(context, lambda: traces.get_trace(self.store, request.trace_id))
        return trace_message(trace)

    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionsResponse:
        page = await self._call(
            context,
            lambda: sessions.list_sessions(
                self.store,
                since=request.since or None,
                until=request.until or None,
                user=request.user or None,
                limit=request.limit or None,
                cursor=request.cursor or None,
                sort=request.sort or None,
            ),
        )
        return pb.ListSessionsResponse(
            table=to_table(page.columns, page.rows), next_cursor=page.next_cursor or ""
        )

    async def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        session = await self._call(context, lambda: sessions.get_session(self.store, request.session_id))
        return session_message(session)

    # -- eval examples and annotations (query/evals.py) ------------------------------------------

    async def ListEvals(self, request: pb.ListEvalsRequest, context: grpc.aio.ServicerContext) -> pb.Table:
        examples = await self._call(
            context, _found(lambda: evals.list_evals(self.store, request.run_id, request.dataset or None))
        )
        return _dicts_table(EVAL_COLUMNS, examples)

    async def CompareEvals(self, request: pb.CompareEvalsRequest, context: grpc.aio.ServicerContext) -> pb.Table:
        result = await self._call(
            context,
            _found(
                lambda: evals.compare_evals(
                    self.store,
                    list(request.run_ids),
                    dataset=request.dataset or None,
                    change=request.change or None,
                    score=request.score or None,
                )
            ),
        )
        return to_table(*evals.compare_table(result))

    async def ListAnnotations(
        self, request: pb.ListAnnotationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.Table:
        found = await self._call(
            context,
            _found(
                lambda: evals.list_annotations(
                    self.store,
                    trace_id=request.trace_id or None,
                    span_id=request.span_id or None,
                    run=request.run_id or None,
                    dataset=request.dataset or None,
                    example_id=request.example_id or None,
                )
            ),
        )
        return _dicts_table(ANNOTATION_COLUMNS, found)


EVAL_COLUMNS = ("dataset", "example_id", "inputs", "outputs", "references", "scores", "metadata", "trace_ids",
                "annotations", "created", "updated")  # fmt: skip
ANNOTATION_COLUMNS = ("id", "time", "target", "trace_id", "span_id", "run_id", "dataset", "example_id", "name",
                      "kind", "value_type", "value", "user", "rationale", "source")  # fmt: skip


def _dicts_table(columns: Sequence[str], items: Sequence[dict[str, Any]]) -> pb.Table:
    return to_table(columns, [[item.get(c) for c in columns] for item in items])


def _trace_filters(request: pb.ListTracesRequest | pb.TraceFacetsRequest) -> dict[str, str | None]:
    """Which traces a listing holds (its window and filters), as the query functions take them."""
    return {
        "since": request.since or None,
        "until": request.until or None,
        "service": request.service or None,
        "where": request.where or None,
        "search": request.search or None,
    }


def _found(fn: Callable[[], Any]) -> Callable[[], Any]:
    """`fn` with an unknown run answered NOT_FOUND, as an unknown trace is."""

    def run() -> Any:
        try:
            return fn()
        except RunNotFound as exc:
            raise traces.NotFound(str(exc)) from None

    return run


def _store_down(exc: StoreError) -> bool:
    # ClickHouse's own refusals carry "Code: N" (syntax, unknown column, limits); what has no
    # code is the connection failing.
    return "Code:" not in str(exc)


def add_to_server(
    server: grpc.aio.Server, store: Store, readers: Readers, identify: Callable[[Any], int | None] | None = None
) -> None:
    """Serve the Query service on `server` (the OTLP/gRPC server), before it starts."""
    query_pb2_grpc.add_QueryServicer_to_server(QueryServicer(store, readers, identify), server)
