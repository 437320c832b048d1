"""API keys on every endpoint: OTLP gRPC and HTTP (real OTel SDK exporters), REST, the CLI.

One collector with two keys (one from TRACEHOUSE_API_KEYS, one from a keys file) serves the
whole module; a second one checks a keys file given by flag alone and start-up errors.
"""

from __future__ import annotations

import base64
import json

import grpc
import pytest
import requests
from helpers import (
    LOGS_SERVICE_EXPORT,
    TRACE_SERVICE_EXPORT,
    log_request,
    make_span,
    quote,
    run_cli,
    trace_request,
    unique,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from tracehouse_collector.server.auth import (
    ApiKeyError,
    ApiKeys,
    exposure_warning,
    load_keys,
    parse_keys_text,
)

pytestmark = pytest.mark.timeout(180)

ENV_KEY = "env-key-0123456789abcdef"
FILE_KEY = "file-key-fedcba9876543210#x"  # a '#' inside a key is part of it
WRONG_KEY = "wrong-key-0123456789abcdef"
KEYS_FILE_TEXT = f"""# Tracehouse API keys
{FILE_KEY}   # the CI key

"""


@pytest.fixture(scope="module")
def secured(start_collector, tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text(KEYS_FILE_TEXT)
    c = start_collector(
        env={"TRACEHOUSE_API_KEYS": f"{ENV_KEY}, ", "TRACEHOUSE_API_KEYS_FILE": str(keys_file)},
        name="auth",
    )
    return c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count_spans(c, service: str) -> int:
    r = requests.post(
        c.http_url + "/api/v1/sql",
        json={"sql": f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}"},
        headers=bearer(ENV_KEY),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["rows"][0][0]


# -- key handling, no server -----------------------------------------------------------------


def test_keys_file_parsing_and_validation(tmp_path):
    assert parse_keys_text(KEYS_FILE_TEXT) == [FILE_KEY]
    f = tmp_path / "k"
    f.write_text("a-key\n#comment\n  b-key  \n")
    assert load_keys("c-key,a-key", str(f)) == ["c-key", "a-key", "b-key"]
    assert load_keys(None, None) == []
    # Set but empty is an error, never "no keys": a mistyped deployment must not fail open.
    with pytest.raises(ApiKeyError, match="holds no key"):
        load_keys("", None)
    with pytest.raises(ApiKeyError, match="is empty"):
        load_keys(None, "")
    with pytest.raises(ApiKeyError, match="holds no key"):
        load_keys(" , ", None)
    f.write_text("# only a comment\n")
    with pytest.raises(ApiKeyError, match="holds no key"):
        load_keys(None, str(f))
    with pytest.raises(ApiKeyError, match="cannot read"):
        load_keys(None, str(tmp_path / "missing"))
    f.write_text("good-key\nbad key with spaces-SECRET\n")
    with pytest.raises(ApiKeyError) as err:
        load_keys(None, str(f))
    assert "key 2 of" in str(err.value) and "SECRET" not in str(err.value)


def test_key_matching():
    keys = ApiKeys([ENV_KEY, FILE_KEY])
    assert keys.authorizes(f"Bearer {ENV_KEY}") and keys.authorizes(f"bearer  {FILE_KEY}")
    assert keys.authorizes(b"Bearer " + ENV_KEY.encode())
    basic = base64.b64encode(f"anyone:{FILE_KEY}".encode()).decode()
    assert keys.authorizes(f"Basic {basic}")
    for bad in (
        None,
        "",
        "Bearer",
        "Bearer ",
        f"Bearer {WRONG_KEY}",
        ENV_KEY,
        f"Token {ENV_KEY}",
        f"Bearer {ENV_KEY}x",
        f"Bearer {ENV_KEY[:-1]}",
        "Basic !!!",
        "Basic " + base64.b64encode(ENV_KEY.encode()).decode(),
    ):
        assert not keys.authorizes(bad), bad
    assert not ApiKeys([]).authorizes("Bearer ")
    assert ENV_KEY not in repr(keys)


def test_exposure_warning():
    keys = ApiKeys([ENV_KEY])
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert exposure_warning(host, ApiKeys([]), tls=False) is None
    assert "without API keys" in exposure_warning("0.0.0.0", ApiKeys([]), tls=True)
    assert "without TLS" in exposure_warning("10.1.2.3", keys, tls=False)
    assert exposure_warning("::", keys, tls=True) is None
    assert ENV_KEY not in exposure_warning("example.org", keys, tls=False)


# -- HTTP ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/v1/traces"),
        ("POST", "/v1/metrics"),
        ("POST", "/v1/logs"),
        ("POST", "/api/v1/sql"),
        ("GET", "/api/v1/sql?q=SELECT+1"),
        ("GET", "/api/v1/traces"),
        ("GET", "/api/v1/query/latency?by=model"),
        ("GET", "/api/v1/runs"),
        ("HEAD", "/api/v1/artifacts/" + "0" * 64),
        ("GET", "/static/app.js"),  # routes that do not exist yet are refused the same way
        ("GET", "/api/v1/no-such-route"),
    ],
)
@pytest.mark.parametrize("auth", [None, f"Bearer {WRONG_KEY}", ENV_KEY, "Basic Og=="])
def test_http_endpoints_refuse_missing_or_wrong_key(secured, method, path, auth):
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    r = requests.request(method, secured.http_url + path, data=b"{}", headers=headers, timeout=30)
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    if method != "HEAD":
        assert "API key" in r.json()["error"]
    challenges = r.raw.headers.getlist("WWW-Authenticate")
    assert any(ch.startswith("Bearer") for ch in challenges), challenges


def test_ui_shell_loads_without_a_key_but_its_data_does_not(secured):
    """The page and its static files carry no data; the UI's fetch() calls are refused with a
    Bearer challenge only (no browser password prompt over the UI's sign-in form), while a
    page load of an API URL also gets the Basic challenge."""
    import http.client

    for path in ("/", "/ui/app.js", "/ui/lib.js", "/ui/vendor/echarts/echarts.min.js"):
        r = requests.get(secured.http_url + path, timeout=30)
        assert r.status_code == 200, (path, r.status_code)
    r = requests.get(secured.http_url + "/api/v1/runs", headers={"Sec-Fetch-Mode": "cors"}, timeout=30)
    assert r.status_code == 401
    assert r.raw.headers.getlist("WWW-Authenticate") == ['Bearer realm="tracehouse"']
    r = requests.get(secured.http_url + "/api/v1/runs", headers={"Sec-Fetch-Mode": "navigate"}, timeout=30)
    assert any(ch.startswith("Basic") for ch in r.raw.headers.getlist("WWW-Authenticate"))
    # A path that climbs out of /ui/ is not a static file and stays locked.
    host, port = secured.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/ui/../api/v1/sql?q=SELECT%201")
    assert conn.getresponse().status in (401, 403, 404)
    conn.close()


def test_http_otlp_and_rest_accept_either_key(secured):
    service = unique("auth-http")
    body = trace_request(service, [make_span("a"), make_span("b")]).SerializeToString()
    for key in (ENV_KEY, FILE_KEY):
        r = secured.post("/v1/traces", body, **bearer(key))
        assert r.status_code == 200, r.content
    assert count_spans(secured, service) == 2  # the retry of the same body is not stored twice
    r = requests.post(
        secured.http_url + "/api/v1/sql",
        json={"sql": "SELECT 6 * 7 AS x"},
        headers=bearer(FILE_KEY),
        timeout=30,
    )
    assert r.status_code == 200 and r.json() == {"columns": ["x"], "rows": [[42]]}
    # Browsers: Basic auth with the key as the password.
    r = requests.get(secured.http_url + "/api/v1/sql?q=SELECT%201", auth=("me", ENV_KEY), timeout=30)
    assert r.status_code == 200, r.text


def test_refused_export_stores_nothing(secured):
    service = unique("auth-refused")
    body = trace_request(service, [make_span("x")]).SerializeToString()
    assert secured.post("/v1/traces", body, **bearer(WRONG_KEY)).status_code == 401
    assert secured.post("/v1/traces", body).status_code == 401
    assert count_spans(secured, service) == 0


def test_healthz_open_but_reveals_nothing_without_key(secured):
    r = requests.get(secured.http_url + "/healthz", timeout=10)
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    r = requests.get(secured.http_url + "/healthz", headers=bearer(WRONG_KEY), timeout=10)
    assert r.json() == {"status": "ok"}
    full = requests.get(secured.http_url + "/healthz", headers=bearer(ENV_KEY), timeout=10).json()
    assert full["status"] == "ok" and "store" in full and "version" in full


# -- gRPC ------------------------------------------------------------------------------------


def grpc_call(c, path: str, body: bytes, metadata=None):
    with grpc.insecure_channel(c.grpc_endpoint) as channel:
        stub = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        return stub(body, metadata=metadata, timeout=30)


@pytest.mark.parametrize(
    "path",
    [
        TRACE_SERVICE_EXPORT,
        LOGS_SERVICE_EXPORT,
        "/tracehouse.query.v1.Query/Sql",  # the query service, and anything else on the port
        "/no.such.Service/Method",
    ],
)
@pytest.mark.parametrize("metadata", [None, (("authorization", f"Bearer {WRONG_KEY}"),)])
def test_grpc_refuses_missing_or_wrong_key(secured, path, metadata):
    body = trace_request(unique("auth-grpc"), [make_span()]).SerializeToString()
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(secured, path, body, metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key" in err.value.details()


def test_grpc_accepts_key(secured):
    service = unique("auth-grpc-ok")
    body = trace_request(service, [make_span()]).SerializeToString()
    raw = grpc_call(secured, TRACE_SERVICE_EXPORT, body, (("authorization", f"Bearer {FILE_KEY}"),))
    assert ExportTraceServiceResponse.FromString(raw) == ExportTraceServiceResponse()
    body = log_request(service, ["hello"]).SerializeToString()
    grpc_call(secured, LOGS_SERVICE_EXPORT, body, (("authorization", f"Bearer {ENV_KEY}"),))
    assert count_spans(secured, service) == 1


def test_grpc_query_service_needs_key(secured):
    from tracehouse_collector.api.proto.tracehouse.query.v1 import query_pb2, query_pb2_grpc

    request = query_pb2.SqlRequest(sql="SELECT 42 AS x")
    with grpc.insecure_channel(secured.grpc_endpoint) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        table = stub.Sql(request, metadata=(("authorization", f"Bearer {ENV_KEY}"),), timeout=30)
        assert [c.name for c in table.columns] == ["x"] and len(table.rows) == 1
        for metadata in (None, (("authorization", f"Bearer {WRONG_KEY}"),)):
            with pytest.raises(grpc.RpcError) as err:
                stub.Sql(request, metadata=metadata, timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- real OTel SDK exporters, configured by OTEL_EXPORTER_OTLP_HEADERS -------------------------


def sdk_exporter(transport: str, c):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=c.grpc_endpoint, insecure=True, timeout=10)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=c.http_url + "/v1/traces", timeout=10)


class RecordingProcessor(SimpleSpanProcessor):
    """Keeps the exporter's result for each span, so a refused export is visible to the test."""

    def __init__(self, exporter) -> None:
        super().__init__(exporter)
        self.results: list[SpanExportResult] = []

    def on_end(self, span) -> None:
        self.results.append(self.span_exporter.export((span,)))


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("key", [ENV_KEY, FILE_KEY, WRONG_KEY, None])
def test_sdk_exporters_with_otel_headers(secured, monkeypatch, transport, key):
    if key is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_HEADERS", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{key}")
    service = unique(f"auth-sdk-{transport}")
    processor = RecordingProcessor(sdk_exporter(transport, secured))
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    with provider.get_tracer("auth-tests").start_as_current_span("call"):
        pass
    provider.shutdown()
    accepted = key in (ENV_KEY, FILE_KEY)
    assert processor.results == [SpanExportResult.SUCCESS if accepted else SpanExportResult.FAILURE]
    assert count_spans(secured, service) == (1 if accepted else 0)


# -- CLI -------------------------------------------------------------------------------------


def test_cli_sends_api_key(secured):
    stmt = "SELECT 1 AS one"
    p = run_cli("sql", stmt, "--server", secured.http_url, "--format", "json", "--api-key", ENV_KEY)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"one": 1}]
    p = run_cli(
        "sql", stmt, "--server", secured.http_url, "--format", "json", env={"TRACEHOUSE_API_KEY": FILE_KEY}
    )
    assert p.returncode == 0, p.stderr
    for extra in ([], ["--api-key", WRONG_KEY]):
        p = run_cli("sql", stmt, "--server", secured.http_url, *extra)
        assert p.returncode != 0 and p.stdout == ""
        assert p.stderr.startswith("tracehouse: ") and "API key" in p.stderr, p.stderr
        assert WRONG_KEY not in p.stderr


def test_keys_never_logged(secured):
    # Every test above has run against this collector by now (module order); none of the keys
    # it saw, right or wrong, may be in its log.
    requests.get(secured.http_url + "/api/v1/sql?q=SELECT+1", headers=bearer(WRONG_KEY), timeout=10)
    log = secured.log_text()
    assert "API keys   required (2 configured)" in log
    for key in (ENV_KEY, FILE_KEY, WRONG_KEY, "env-key", "file-key", "wrong-key"):
        assert key not in log, key


# -- start-up --------------------------------------------------------------------------------


def test_keys_file_flag_error_and_open_server(start_collector, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("flag-key-0123456789\n")
    from helpers import free_port

    # A bad keys file stops the start with a message, not a traceback.
    p = run_cli(
        "serve",
        "--data-dir",
        str(tmp_path / "d"),
        "--grpc-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--api-keys-file",
        str(tmp_path / "missing"),
        timeout=60,
    )
    assert p.returncode != 0 and "cannot read the API keys file" in p.stderr and "Traceback" not in p.stderr
    p = run_cli(
        "serve", "--data-dir", str(tmp_path / "d"), "--grpc-port", str(free_port()),
        "--http-port", str(free_port()), env={"TRACEHOUSE_API_KEYS": ""}, timeout=60,
    )  # fmt: skip
    assert p.returncode != 0 and "holds no key" in p.stderr and "Traceback" not in p.stderr
    # Without keys nothing asks for one.
    open_server = start_collector(name="auth-open")
    assert open_server.sql_raw("SELECT 1 AS x") == {"columns": ["x"], "rows": [[1]]}
    assert "store" in open_server.health().json()
    assert "API keys   not required" in open_server.log_text()
