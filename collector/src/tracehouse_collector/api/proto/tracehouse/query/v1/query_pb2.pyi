from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Column(_message.Message):
    __slots__ = ("name", "type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null_value", "bool_value", "int_value", "double_value", "string_value", "json_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: bool
    bool_value: bool
    int_value: int
    double_value: float
    string_value: str
    json_value: str
    def __init__(self, null_value: _Optional[bool] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., double_value: _Optional[float] = ..., string_value: _Optional[str] = ..., json_value: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("columns", "rows")
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    def __init__(self, columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ...) -> None: ...

class SqlRequest(_message.Message):
    __slots__ = ("sql",)
    SQL_FIELD_NUMBER: _ClassVar[int]
    sql: str
    def __init__(self, sql: _Optional[str] = ...) -> None: ...

class ListEvalsRequest(_message.Message):
    __slots__ = ("run_id", "dataset")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    dataset: str
    def __init__(self, run_id: _Optional[str] = ..., dataset: _Optional[str] = ...) -> None: ...

class CompareEvalsRequest(_message.Message):
    __slots__ = ("run_ids", "dataset", "change", "score")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    change: str
    score: str
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., change: _Optional[str] = ..., score: _Optional[str] = ...) -> None: ...

class ListAnnotationsRequest(_message.Message):
    __slots__ = ("trace_id", "span_id", "run_id", "dataset", "example_id")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    span_id: str
    run_id: str
    dataset: str
    example_id: str
    def __init__(self, trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., run_id: _Optional[str] = ..., dataset: _Optional[str] = ..., example_id: _Optional[str] = ...) -> None: ...

class AggregateRequest(_message.Message):
    __slots__ = ("kind", "by", "since", "until", "service", "where", "all_spans", "unpriced")
    KIND_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    ALL_SPANS_FIELD_NUMBER: _ClassVar[int]
    UNPRICED_FIELD_NUMBER: _ClassVar[int]
    kind: str
    by: _containers.RepeatedScalarFieldContainer[str]
    since: str
    until: str
    service: str
    where: str
    all_spans: bool
    unpriced: bool
    def __init__(self, kind: _Optional[str] = ..., by: _Optional[_Iterable[str]] = ..., since: _Optional[str] = ..., until: _Optional[str] = ..., service: _Optional[str] = ..., where: _Optional[str] = ..., all_spans: _Optional[bool] = ..., unpriced: _Optional[bool] = ...) -> None: ...

class ListTracesRequest(_message.Message):
    __slots__ = ("since", "until", "service", "where", "limit", "cursor", "sort", "search", "count")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    service: str
    where: str
    limit: int
    cursor: str
    sort: str
    search: str
    count: bool
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., service: _Optional[str] = ..., where: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., sort: _Optional[str] = ..., search: _Optional[str] = ..., count: _Optional[bool] = ...) -> None: ...

class ListTracesResponse(_message.Message):
    __slots__ = ("table", "next_cursor", "total")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    table: Table
    next_cursor: str
    total: int
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ..., next_cursor: _Optional[str] = ..., total: _Optional[int] = ...) -> None: ...

class TraceFacetsRequest(_message.Message):
    __slots__ = ("since", "until", "service", "where", "search", "size")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    service: str
    where: str
    search: str
    size: int
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., service: _Optional[str] = ..., where: _Optional[str] = ..., search: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class FacetValue(_message.Message):
    __slots__ = ("value", "traces", "label")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    TRACES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    value: str
    traces: int
    label: str
    def __init__(self, value: _Optional[str] = ..., traces: _Optional[int] = ..., label: _Optional[str] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[FacetValue]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FacetValue, _Mapping]]] = ...) -> None: ...

class TraceFacetsResponse(_message.Message):
    __slots__ = ("facets",)
    FACETS_FIELD_NUMBER: _ClassVar[int]
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    def __init__(self, facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ...) -> None: ...

class GetTraceRequest(_message.Message):
    __slots__ = ("trace_id",)
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    def __init__(self, trace_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("since", "until", "user", "limit", "cursor", "sort")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    since: str
    until: str
    user: str
    limit: int
    cursor: str
    sort: str
    def __init__(self, since: _Optional[str] = ..., until: _Optional[str] = ..., user: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., sort: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("table", "next_cursor")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    table: Table
    next_cursor: str
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SpanEvent(_message.Message):
    __slots__ = ("name", "offset_ms", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    offset_ms: float
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., offset_ms: _Optional[float] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("id", "name", "arguments_json", "type")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    arguments_json: str
    type: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class Span(_message.Message):
    __slots__ = ("span_id", "parent_span_id", "name", "kind", "service", "start_time", "offset_ms", "duration_ms", "status", "status_message", "operation", "provider", "model", "request_model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "total_tokens", "tokens_estimated", "cost_usd", "input_json", "output_json", "tool_calls", "tool_json", "error_type", "error_message", "has_error", "events", "attributes", "resource", "orphan", "children", "session_id", "user_id", "run_id", "tool_definitions_json", "finish_reasons", "content_truncated", "annotations_json")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ResourceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFSET_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOOL_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HAS_ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ORPHAN_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_DEFINITIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASONS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service: str
    start_time: str
    offset_ms: float
    duration_ms: float
    status: str
    status_message: str
    operation: str
    provider: str
    model: str
    request_model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    total_tokens: int
    tokens_estimated: bool
    cost_usd: str
    input_json: str
    output_json: str
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    tool_json: str
    error_type: str
    error_message: str
    has_error: bool
    events: _containers.RepeatedCompositeFieldContainer[SpanEvent]
    attributes: _containers.ScalarMap[str, str]
    resource: _containers.ScalarMap[str, str]
    orphan: bool
    children: _containers.RepeatedCompositeFieldContainer[Span]
    session_id: str
    user_id: str
    run_id: str
    tool_definitions_json: str
    finish_reasons: _containers.RepeatedScalarFieldContainer[str]
    content_truncated: _containers.RepeatedScalarFieldContainer[str]
    annotations_json: str
    def __init__(self, span_id: _Optional[str] = ..., parent_span_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., service: _Optional[str] = ..., start_time: _Optional[str] = ..., offset_ms: _Optional[float] = ..., duration_ms: _Optional[float] = ..., status: _Optional[str] = ..., status_message: _Optional[str] = ..., operation: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., request_model: _Optional[str] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_read_tokens: _Optional[int] = ..., cache_write_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., tokens_estimated: _Optional[bool] = ..., cost_usd: _Optional[str] = ..., input_json: _Optional[str] = ..., output_json: _Optional[str] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., tool_json: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., has_error: _Optional[bool] = ..., events: _Optional[_Iterable[_Union[SpanEvent, _Mapping]]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., resource: _Optional[_Mapping[str, str]] = ..., orphan: _Optional[bool] = ..., children: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., run_id: _Optional[str] = ..., tool_definitions_json: _Optional[str] = ..., finish_reasons: _Optional[_Iterable[str]] = ..., content_truncated: _Optional[_Iterable[str]] = ..., annotations_json: _Optional[str] = ...) -> None: ...

class Trace(_message.Message):
    __slots__ = ("trace_id", "start_time", "duration_ms", "span_count", "services", "status", "llm_calls", "models", "input_tokens", "output_tokens", "total_tokens", "cost_usd", "session_id", "user_id", "run_id", "scores_json", "spans", "truncated", "annotations_json")
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SPAN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LLM_CALLS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_JSON_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ANNOTATIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    trace_id: str
    start_time: str
    duration_ms: float
    span_count: int
    services: _containers.RepeatedScalarFieldContainer[str]
    status: str
    llm_calls: int
    models: _containers.RepeatedScalarFieldContainer[str]
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: str
    session_id: str
    user_id: str
    run_id: str
    scores_json: str
    spans: _containers.RepeatedCompositeFieldContainer[Span]
    truncated: bool
    annotations_json: str
    def __init__(self, trace_id: _Optional[str] = ..., start_time: _Optional[str] = ..., duration_ms: _Optional[float] = ..., span_count: _Optional[int] = ..., services: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., llm_calls: _Optional[int] = ..., models: _Optional[_Iterable[str]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., run_id: _Optional[str] = ..., scores_json: _Optional[str] = ..., spans: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., truncated: _Optional[bool] = ..., annotations_json: _Optional[str] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("turn", "trace_id", "start_time", "status", "latency_ms", "models", "total_tokens", "cost_usd", "input", "output")
    TURN_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    turn: int
    trace_id: str
    start_time: str
    status: str
    latency_ms: float
    models: _containers.RepeatedScalarFieldContainer[str]
    total_tokens: int
    cost_usd: str
    input: str
    output: str
    def __init__(self, turn: _Optional[int] = ..., trace_id: _Optional[str] = ..., start_time: _Optional[str] = ..., status: _Optional[str] = ..., latency_ms: _Optional[float] = ..., models: _Optional[_Iterable[str]] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[str] = ..., input: _Optional[str] = ..., output: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "user_id", "first_time", "last_time", "traces", "llm_calls", "total_tokens", "cost_usd", "turns")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    TRACES_FIELD_NUMBER: _ClassVar[int]
    LLM_CALLS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    first_time: str
    last_time: str
    traces: int
    llm_calls: int
    total_tokens: int
    cost_usd: str
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., first_time: _Optional[str] = ..., last_time: _Optional[str] = ..., traces: _Optional[int] = ..., llm_calls: _Optional[int] = ..., total_tokens: _Optional[int] = ..., cost_usd: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ...) -> None: ...
