"""tracehouse.Client against a real `tracehouse serve`, filled with known data through the
OpenTelemetry SDK (spans) and the run API (runs): every value equals the REST answer and what
the test sent, with the documented dtypes; errors carry the server's message.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tracehouse
from collectors import Collector
from helpers import REPO, quote, run_sdk_to, unique
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from tracehouse import _client

N_TRACES = 7
STEPS = 40
READ_KEY = "client-read-key-0123456789"
INGEST_KEY = "client-ingest-key-0123456789"
MAX_ROWS = 1000


def _cost(i: int) -> Decimal:
    return Decimal("0.000123456789") * (i + 1)


class Filled:
    """What the test sent, to compare the client's answers with."""

    def __init__(self) -> None:
        self.service = unique("client")
        self.experiment = unique("exp")
        self.traces: dict[str, dict] = {}  # trace id -> {"spans": {span id: parent id}, "i": n}
        self.runs: list[dict] = []


def _send_spans(collector: Collector, filled: Filled) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": filled.service}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.http_url + "/v1/traces", timeout=30))
    )
    tracer = provider.get_tracer("tests.client")
    for i in range(N_TRACES):
        with tracer.start_as_current_span("agent", attributes={"case": f"c{i}"}) as root:
            with tracer.start_as_current_span(
                "chat gpt-4o-mini",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": 100 + i,
                    "gen_ai.usage.output_tokens": 10 + i,
                    "gen_ai.usage.cost": str(_cost(i)),
                },
            ) as chat:
                if i == N_TRACES - 1:
                    chat.set_status(Status(StatusCode.ERROR, "rate limited"))
            ctx, chat_ctx = root.get_span_context(), chat.get_span_context()
        filled.traces[f"{ctx.trace_id:032x}"] = {
            "i": i,
            "spans": {f"{ctx.span_id:016x}": "", f"{chat_ctx.span_id:016x}": f"{ctx.span_id:016x}"},
        }
    assert provider.force_flush(30_000)
    provider.shutdown()


def _loss(run: int, step: int) -> float:
    return float(np.float64(1.0) / (step + 1 + run))


def _send_runs(collector: Collector, filled: Filled, spool: Path) -> None:
    with run_sdk_to(collector.http_url, spool):
        for n in range(3):
            params = {
                "lr": 0.01 * (n + 1),
                "batch": 32 * (n + 1),
                "opt": ["adam", "sgd", "adam"][n],
                "bn": n != 1,
            }
            with tracehouse.run(
                experiment=filled.experiment, name=f"r{n}", params=params, tags={"seed": str(n)}
            ) as r:
                for step in range(STEPS):
                    r.log_metric("loss", _loss(n, step), step=step)
                r.log_metric("acc", 0.5 + n / 10, step=STEPS - 1)
            filled.runs.append({"id": r.id, "name": f"r{n}", "params": params})


@pytest.fixture(scope="module")
def server(start_collector) -> Collector:
    return start_collector(env={"TRACEHOUSE_SQL_MAX_ROWS": "2000000"}, name="client")


@pytest.fixture(scope="module")
def filled(server: Collector, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    data = Filled()
    _send_spans(server, data)
    _send_runs(server, data, tmp_path_factory.mktemp("spool"))
    return data


@pytest.fixture(scope="module")
def client(server: Collector) -> tracehouse.Client:
    return tracehouse.Client(server.http_url)


def _rest(server: Collector, method: str, path: str, **kwargs) -> object:
    r = server.session.request(method, server.http_url + path, timeout=120, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def _ts(value: str) -> pd.Timestamp:
    """A time the REST JSON wrote (ISO-8601, UTC when it names no zone)."""
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


# -- sql ------------------------------------------------------------------------------------

SPANS_SQL = (
    "SELECT TraceId, SpanId, ParentSpanId, Timestamp, toUnixTimestamp64Nano(Timestamp) AS ns, Duration, "
    "toStartOfHour(Timestamp) AS hour, "
    "InputTokens, OutputTokens, TotalCostUSD, TokensEstimated, SpanAttributes, StatusCode "
    "FROM otel_traces WHERE ServiceName = {svc} ORDER BY Timestamp, SpanId"
)


def test_sql_values_and_dtypes_equal_the_rest_answer(client, server, filled):
    statement = SPANS_SQL.format(svc=quote(filled.service))
    df = client.sql(statement)
    rest = _rest(server, "POST", "/api/v1/sql", json={"sql": statement})
    assert list(df.columns) == rest["columns"]
    assert len(df) == len(rest["rows"]) == 2 * N_TRACES
    assert df["Timestamp"].dtype == "datetime64[ns, UTC]" and df["hour"].dtype == "datetime64[s, UTC]"
    assert df["InputTokens"].dtype == np.uint64 and df["Duration"].dtype == np.uint64
    assert df["TotalCostUSD"].dtype == object and all(isinstance(v, Decimal) for v in df["TotalCostUSD"])
    assert df["TokensEstimated"].dtype == bool
    for got, want in zip(df.itertuples(index=False), rest["rows"], strict=True):
        want = dict(zip(rest["columns"], want, strict=True))
        assert got.TraceId == want["TraceId"] and got.SpanId == want["SpanId"]
        assert got.ParentSpanId == want["ParentSpanId"]
        # JSON carries microseconds; the Arrow answer the stored nanoseconds
        assert got.Timestamp.value == int(want["ns"]) and got.ns == int(want["ns"])
        assert got.Timestamp.floor("us") == _ts(want["Timestamp"])
        assert got.hour == _ts(want["hour"]) == got.Timestamp.floor("h")  # a DateTime, not seconds
        assert got.Duration == int(want["Duration"])
        assert (got.InputTokens, got.OutputTokens) == (int(want["InputTokens"]), int(want["OutputTokens"]))
        assert got.TotalCostUSD == Decimal(want["TotalCostUSD"])
        assert got.TokensEstimated == bool(want["TokensEstimated"])
        assert got.SpanAttributes == want["SpanAttributes"] and isinstance(got.SpanAttributes, dict)
    # and what was sent: the costs and tokens each chat span reported, the parent links
    chats = df[df["InputTokens"] > 0].sort_values("InputTokens")
    assert list(chats["TotalCostUSD"]) == [_cost(i) for i in range(N_TRACES)]
    assert list(chats["InputTokens"]) == [100 + i for i in range(N_TRACES)]
    for row in df.itertuples(index=False):
        assert filled.traces[row.TraceId]["spans"][row.SpanId] == row.ParentSpanId


def test_sql_as_arrow_keeps_clickhouse_types(client, filled):
    statement = SPANS_SQL.format(svc=quote(filled.service))
    table = client.sql(statement, as_="arrow")
    assert isinstance(table, pa.Table) and table.num_rows == 2 * N_TRACES
    assert table.schema.field("Timestamp").type == pa.timestamp("ns", "UTC")
    assert table.schema.field("TotalCostUSD").type == pa.decimal128(18, 12)
    assert table.schema.field("InputTokens").type == pa.uint64()
    assert pa.types.is_map(table.schema.field("SpanAttributes").type)
    assert sorted(table.column("TotalCostUSD").to_pylist()) == sorted(
        [Decimal(0)] * N_TRACES + [_cost(i) for i in range(N_TRACES)]
    )


def test_polars_output(client, filled):
    pl = pytest.importorskip(
        "polars", reason="polars is not installed in this environment (tracehouse[polars])"
    )
    df = client.sql(SPANS_SQL.format(svc=quote(filled.service)), as_="polars")
    assert isinstance(df, pl.DataFrame) and df.height == 2 * N_TRACES
    assert df.schema["Timestamp"] == pl.Datetime("ns", "UTC")
    assert isinstance(df.schema["TotalCostUSD"], pl.Decimal)


def test_datetimes_are_times_nullable_or_not(client):
    df = client.sql(
        "SELECT toDateTime('2026-05-01 10:20:30', 'Asia/Tokyo') AS tokyo, "
        "if(number = 0, NULL, toDateTime(1780000000 + number, 'UTC')) AS maybe, toIPv4('1.2.3.4') AS ip "
        "FROM numbers(2)"
    )
    assert df["tokyo"].dtype == "datetime64[s, UTC]" and df["maybe"].dtype == "datetime64[s, UTC]"
    assert df["tokyo"].iloc[0] == pd.Timestamp("2026-05-01 01:20:30", tz="UTC")
    assert pd.isna(df["maybe"].iloc[0]) and df["maybe"].iloc[1] == pd.Timestamp(
        1780000001, unit="s", tz="UTC"
    )
    assert df["ip"].dtype == np.uint32  # other uint32 columns stay numbers


def test_an_empty_result_keeps_its_columns_and_types(client):
    df = client.sql(
        "SELECT TraceId, Timestamp, TotalCostUSD FROM otel_traces WHERE ServiceName = 'no such service'"
    )
    assert len(df) == 0 and list(df.columns) == ["TraceId", "Timestamp", "TotalCostUSD"]
    assert df["Timestamp"].dtype == "datetime64[ns, UTC]"


def test_nullable_integers_stay_integers(client):
    big = 2**63 + 7  # above 2**53: a float would lose it
    df = client.sql(f"SELECT if(number % 2 = 0, NULL, toUInt64({big}) + number) AS n FROM numbers(4)")
    assert str(df["n"].dtype) == "UInt64"
    assert df["n"].isna().tolist() == [True, False, True, False]
    assert [int(v) for v in df["n"].dropna()] == [big + 1, big + 3]


def test_a_large_result_arrives_whole(client):
    n = 300_000
    df = client.sql(f"SELECT number, toString(number) AS s, number * 0.5 AS half FROM numbers({n})")
    assert len(df) == n and df["number"].dtype == np.uint64
    expected = np.arange(n, dtype=np.uint64)
    assert np.array_equal(df["number"].to_numpy(), expected)
    assert np.array_equal(df["half"].to_numpy(), expected * 0.5)
    assert df["s"].iloc[-1] == str(n - 1)


def test_rest_arrow_by_parameter_or_accept_and_errors_stay_json(server):
    url = server.http_url + "/api/v1/sql"
    by_param = server.session.get(url, params={"q": "SELECT 1 AS one", "format": "arrow"}, timeout=60)
    by_accept = server.session.post(
        url,
        json={"sql": "SELECT 1 AS one"},
        headers={"Accept": "application/vnd.apache.arrow.stream"},
        timeout=60,
    )
    for r in (by_param, by_accept):
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
        assert pa.ipc.open_stream(r.content).read_all().to_pylist() == [{"one": 1}]
    refused = server.session.get(
        url, params={"q": "SELECT * FROM system.users", "format": "arrow"}, timeout=60
    )
    assert refused.status_code == 400 and "system.users is not allowed" in refused.json()["error"]
    bogus = server.session.get(server.http_url + "/api/v1/query/cost", params={"format": "xml"}, timeout=60)
    assert (
        bogus.status_code == 400 and bogus.json()["error"] == "format: use json, parquet or arrow, got 'xml'"
    )


# -- query ----------------------------------------------------------------------------------


def test_aggregates_equal_the_rest_answer(client, server, filled):
    for kind, by in (("cost", ["day", "model"]), ("errors", ["service"]), ("latency", ["model", "hour"])):
        df = client.query(kind, by=by, service=filled.service, since="1d")
        rest = _rest(
            server, "POST", f"/api/v1/query/{kind}", json={"by": by, "service": filled.service, "since": "1d"}
        )
        assert list(df.columns) == rest["columns"], kind
        assert len(df) == len(rest["rows"]) >= 1, kind
        for got, want in zip(df.itertuples(index=False), rest["rows"], strict=True):
            for column, g, w in zip(rest["columns"], got, want, strict=True):
                if isinstance(g, Decimal):
                    assert g == Decimal(w), (kind, column)
                elif isinstance(g, pd.Timestamp):
                    assert g == _ts(w) and df[column].dtype == "datetime64[s, UTC]", (kind, column)
                elif isinstance(g, float) and w is None:
                    assert np.isnan(g), (kind, column)
                else:
                    assert g == w, (kind, column)
    cost = client.query(
        "cost", by=["model"], service=filled.service, since=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    )
    row = cost.iloc[0]
    assert row["model"] == "gpt-4o-mini" and row["count"] == N_TRACES
    assert (
        row["input_tokens"] == sum(100 + i for i in range(N_TRACES))
        and cost["input_tokens"].dtype == np.uint64
    )
    assert row["cost_usd"] == sum(_cost(i) for i in range(N_TRACES)) and isinstance(row["cost_usd"], Decimal)
    errors = client.query("errors", by="service", service=filled.service)
    assert errors["errors"].iloc[0] == 1


# -- traces ---------------------------------------------------------------------------------


def test_traces_page_through_everything(client, server, filled, monkeypatch):
    monkeypatch.setattr(_client, "TRACES_PAGE", 3)  # pages of 3: 7 traces take three requests
    df = client.traces(service=filled.service, limit=None)
    rest = _rest(server, "POST", "/api/v1/traces", json={"service": filled.service, "limit": 1000})
    assert rest["next_cursor"] is None
    assert list(df["trace_id"]) == [r[0] for r in rest["rows"]]
    assert set(df["trace_id"]) == set(filled.traces)
    assert df["start_time"].dtype == "datetime64[us, UTC]" and df["spans"].dtype == np.uint64
    for got, want in zip(df.to_dict("records"), rest["rows"], strict=True):
        want = dict(zip(rest["columns"], want, strict=True))
        assert got["start_time"] == _ts(want["start_time"])
        assert got["cost_usd"] == Decimal(want["cost_usd"])
        assert got["models"].tolist() == want["models"] and got["scores"] == want["scores"]
        for key in set(rest["columns"]) - {"start_time", "cost_usd", "models", "scores"}:
            assert got[key] == want[key] or (want[key] is None and pd.isna(got[key])), key
    assert len(client.traces(service=filled.service, limit=5)) == 5
    assert sorted(df["cost_usd"]) == [_cost(i) for i in range(N_TRACES)]


def test_one_trace_as_spans_with_parents(client, server, filled):
    trace_id = next(t for t, v in filled.traces.items() if v["i"] == N_TRACES - 1)
    spans = client.trace(trace_id)
    tree = _rest(server, "GET", f"/api/v1/traces/{trace_id}")
    assert len(spans) == tree["span_count"] == 2
    assert (
        dict(zip(spans["span_id"], spans["parent_span_id"], strict=True)) == filled.traces[trace_id]["spans"]
    )
    assert list(spans["depth"]) == [0, 1] and list(spans["name"]) == ["agent", "chat gpt-4o-mini"]
    root, chat = tree["spans"][0], tree["spans"][0]["children"][0]
    assert (
        spans["attributes"].iloc[0] == root["attributes"]
        and spans["attributes"].iloc[0]["case"] == f"c{N_TRACES - 1}"
    )
    assert spans["start_time"].iloc[1] == _ts(chat["start_time"])
    assert spans["cost_usd"].iloc[1] == Decimal(chat["cost_usd"]) == _cost(N_TRACES - 1)
    assert spans["status"].iloc[1] == "Error" and "rate limited" in spans["error"].iloc[1]
    assert spans["input_tokens"].dtype == np.uint64 and spans["input_tokens"].iloc[1] == 100 + N_TRACES - 1


# -- runs -----------------------------------------------------------------------------------


def test_runs_table_like_search_runs(client, server, filled):
    df = client.runs(experiment=filled.experiment)
    rest = _rest(server, "GET", "/api/v1/runs", params={"experiment": filled.experiment})
    assert list(df["run_id"]) == [r["id"] for r in rest]
    assert set(df["run_id"]) == {r["id"] for r in filled.runs}
    assert df["params.batch"].dtype == np.int64 and df["params.lr"].dtype == np.float64
    assert df["params.bn"].dtype == bool and df["metrics.loss"].dtype == np.float64
    assert df["start"].dtype == "datetime64[us, UTC]"
    by_id = df.set_index("run_id")
    for sent in filled.runs:
        row = by_id.loc[sent["id"]]
        for key, value in sent["params"].items():
            assert row[f"params.{key}"] == value, key
        n = int(sent["name"][1:])
        assert row["metrics.loss"] == _loss(n, STEPS - 1) and row["metrics.acc"] == 0.5 + n / 10
        assert row["tags.seed"] == str(n) and row["status"] == "finished"
    for want in rest:
        row = by_id.loc[want["id"]]
        assert row["start"] == _ts(want["start"]) and row["end"] == _ts(want["end"])
        assert row["duration_s"] == want["duration_s"]
        assert {k: row[f"metrics.{k}"] for k in want["metrics"]} == want["metrics"]
    best = df.sort_values("metrics.acc", ascending=False)
    assert list(best["name"]) == ["r2", "r1", "r0"]


def test_a_param_of_mixed_types_keeps_each_value(client, server, tmp_path):
    exp = unique("mixed")
    with run_sdk_to(server.http_url, tmp_path / "spool"):
        for value in (3, "three"):
            with tracehouse.run(experiment=exp, params={"k": value}):
                pass
    df = client.runs(experiment=exp)
    assert sorted(df["params.k"], key=str) == [3, "three"] and df["params.k"].dtype == object
    table = client.runs(experiment=exp, as_="arrow")
    assert table.schema.field("params.k").type == pa.string()
    assert sorted(table.column("params.k").to_pylist()) == ["3", "three"]


def test_metric_history_every_point(client, server, filled):
    run = filled.runs[1]
    df = client.metric_history(run["id"], "loss")
    rest = _rest(server, "GET", f"/api/v1/runs/{run['id']}/metrics", params={"key": "loss"})
    assert list(df.columns) == ["key", "step", "value", "timestamp"]
    assert df["step"].dtype == np.int64 and df["value"].dtype == np.float64
    assert df["timestamp"].dtype == "datetime64[ns, UTC]"
    assert list(df["step"]) == list(range(STEPS)) == [p["step"] for p in rest]
    assert np.array_equal(df["value"].to_numpy(), np.array([_loss(1, s) for s in range(STEPS)]))
    assert [t.value for t in df["timestamp"]] == [p["time_unix_nano"] for p in rest]
    everything = client.metric_history(run["id"], all_points=True)
    rest = _rest(server, "GET", f"/api/v1/runs/{run['id']}/metrics", params={"all": "1"})
    assert list(
        zip(everything["key"], everything["step"], everything["value"], everything["timestamp"], strict=True)
    ) == [(p["key"], p["step"], p["value"], pd.Timestamp(p["time_unix_nano"], tz="UTC")) for p in rest]
    logged = everything[~everything["key"].str.startswith("system.")]  # the SDK's samples besides
    assert sorted(set(logged["key"])) == ["acc", "loss"] and len(logged) == STEPS + 1


def test_compare_equals_runs_compare(client, server, filled):
    ids = [r["id"] for r in filled.runs]
    df = client.compare(ids)
    rest = _rest(server, "GET", "/api/v1/runs/compare", params={"ids": ",".join(ids)})
    assert list(df.columns) == rest["columns"] and len(df) == len(rest["rows"])
    for got, want in zip(df.itertuples(index=False), rest["rows"], strict=True):
        for g, w in zip(got, want, strict=True):
            assert (g is None or (isinstance(g, float) and np.isnan(g))) if w is None else g == w, (got, want)
    lr = df[(df["section"] == "param") & (df["key"] == "lr")].iloc[0]
    assert lr[f"delta_{ids[1][:8]}"] == pytest.approx(0.01)


# -- errors ---------------------------------------------------------------------------------


def test_errors_carry_the_servers_message(client):
    with pytest.raises(tracehouse.TracehouseError, match="system table system.users is not allowed") as info:
        client.sql("SELECT * FROM system.users")
    assert info.value.status == 400
    with pytest.raises(tracehouse.TracehouseError, match=r"(?s)col \d+: .*\^") as info:
        client.query("cost", where="model = = 'x'")
    with pytest.raises(tracehouse.TracehouseError, match="no run 'abcdef'") as info:
        client.metric_history("abcdef", "loss")
    assert info.value.status == 404
    with pytest.raises(tracehouse.TracehouseError, match=f"trace {'0' * 31}1 not found") as info:
        client.trace("0" * 31 + "1")
    assert info.value.status == 404
    with pytest.raises(tracehouse.TracehouseError, match="cannot reach the collector"):
        tracehouse.Client("http://127.0.0.1:9").sql("SELECT 1")
    with pytest.raises(ValueError, match="as_: use one of pandas, polars, arrow"):
        client.sql("SELECT 1", as_="excel")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def secured(start_collector, tmp_path_factory) -> Collector:
    keys = tmp_path_factory.mktemp("client-keys") / "keys.txt"
    keys.write_text(f"{READ_KEY} read\n{INGEST_KEY} ingest\n")
    return start_collector(
        env={"TRACEHOUSE_API_KEYS_FILE": str(keys), "TRACEHOUSE_SQL_MAX_ROWS": str(MAX_ROWS)},
        name="client-secured",
    )


def test_keys_scopes_and_limits_apply(secured, monkeypatch):
    monkeypatch.delenv("TRACEHOUSE_API_KEY", raising=False)
    with pytest.raises(
        tracehouse.TracehouseError, match="missing or invalid API key.*no API key was sent"
    ) as info:
        tracehouse.Client(secured.http_url).sql("SELECT 1")
    assert info.value.status == 401
    with pytest.raises(tracehouse.TracehouseError, match="reading needs a key with scope 'read'") as info:
        tracehouse.Client(secured.http_url, api_key=INGEST_KEY).sql("SELECT 1")
    assert info.value.status == 403
    monkeypatch.setenv("TRACEHOUSE_SERVER", secured.http_url)
    monkeypatch.setenv("TRACEHOUSE_API_KEY", READ_KEY)
    reader = tracehouse.Client()
    assert (
        reader.sql(f"SELECT number FROM numbers({MAX_ROWS})")["number"].sum()
        == MAX_ROWS * (MAX_ROWS - 1) // 2
    )
    with pytest.raises(
        tracehouse.TracehouseError, match=f"SQL limit reached: the result has more than {MAX_ROWS} rows"
    ):
        reader.sql(f"SELECT number FROM numbers({MAX_ROWS + 1})")
    with pytest.raises(
        tracehouse.TracehouseError, match=f"SQL limit reached: the result has more than {MAX_ROWS} rows"
    ):
        reader.sql(f"SELECT number FROM numbers({MAX_ROWS}) UNION ALL SELECT number FROM numbers(1)")


# -- the optional extra ----------------------------------------------------------------------

_BLOCKED = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed
import tracehouse
try:
    tracehouse.Client("http://127.0.0.1:9").sql("SELECT 1", as_={output!r})
except ImportError as exc:
    print(type(exc).__name__, exc)
"""


@pytest.mark.parametrize(
    ("blocked", "output", "extra"),
    [
        (["pandas"], "pandas", "pandas"),
        (["pyarrow"], "pandas", "pandas"),
        (["polars"], "polars", "polars"),
        (["pyarrow"], "polars", "polars"),
    ],
)
def test_a_missing_library_names_the_extra(blocked, output, extra):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_BLOCKED.format(blocked=blocked, output=output))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MissingExtraError"), done.stdout
    assert f"pip install 'tracehouse[{extra}]'" in done.stdout and blocked[0] in done.stdout


def test_importing_tracehouse_loads_no_dataframe_library():
    probe = "import sys, tracehouse; tracehouse.Client; print(sorted(m for m in ('pandas', 'pyarrow', 'polars') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
