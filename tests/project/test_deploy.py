"""deploy/: the compose file, Kubernetes manifests, Grafana provisioning, nginx and the image.

Real validators that need no container engine or cluster: Debian's `docker-compose config`,
`kubernetes-validate` (the API's JSON schemas), nginx's own config test, and the dashboard's
SQL run against a real collector's store. Each tool is installed by `.ci/run`; outside CI a
missing tool skips its test, in CI (`CI` set) it fails it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
import requests
import yaml
from grafana_plugin import dashboard_sql
from helpers import (
    BASE_NS,
    REPO,
    TRACE_SERVICE_EXPORT,
    free_port,
    make_span,
    new_trace_id,
    run_cli,
    trace_request,
    unique,
    wait_for,
)

DEPLOY = REPO / "deploy"
DATASOURCE_UID = "tracehouse-clickhouse"


def require_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs it in CI")
        pytest.skip(f"{name} is not installed (apt-get install {name}); CI runs this test")
    return path


# -- docker compose ------------------------------------------------------------------------------


def test_compose_file_is_valid_and_wires_the_stack():
    tool = require_tool("docker-compose")
    compose = str(DEPLOY / "docker-compose.yml")
    check = subprocess.run([tool, "-f", compose, "config", "-q"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    rendered = subprocess.run(
        [tool, "-f", compose, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLICKHOUSE_PASSWORD": "s3cret"},
    )
    assert rendered.returncode == 0, rendered.stderr
    services = yaml.safe_load(rendered.stdout)["services"]
    assert {"clickhouse", "schema", "collector-1", "collector-2", "proxy", "grafana"} <= set(services)
    for name in ("collector-1", "collector-2", "schema"):
        env = services[name]["environment"]
        assert env["TRACEHOUSE_STORE"] == "http://tracehouse:s3cret@clickhouse:8123/tracehouse", name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name in ("collector-1", "collector-2"):
        assert services[name]["depends_on"]["schema"]["condition"] == "service_completed_successfully"
    assert services["schema"]["command"] == ["schema"]
    assert services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"] == "s3cret"
    published = {str(p.get("published", p.get("target"))) for p in _ports(services["proxy"])}
    assert {"4317", "4318"} <= published
    # Every file the stack mounts exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith("/"):
                assert Path(source).exists(), source


def _ports(service: dict) -> list[dict]:
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append(p)
        else:
            published, target = str(p).split(":")[-2:]
            out.append({"published": published, "target": target})
    return out


# -- Kubernetes ----------------------------------------------------------------------------------


def _k8s_documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    import kubernetes_validate

    docs = _k8s_documents()
    kinds = {d["kind"] for _n, d in docs}
    assert {"Namespace", "ConfigMap", "Secret", "Deployment", "Service", "StatefulSet", "Job"} <= kinds
    for name, doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises with the reason
        assert doc["metadata"].get("namespace", "tracehouse") == "tracehouse", name
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted({n for n, _d in docs})

    # The validator must reject a broken manifest, or the check above proves nothing.
    broken = next(d for _n, d in docs if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(broken))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)


def test_k8s_collectors_have_probes_resources_and_both_ports():
    docs = _k8s_documents()
    deployment = next(d for _n, d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    env = {e["name"]: e for e in container["env"]}
    assert env["TRACEHOUSE_STORE"]["valueFrom"]["secretKeyRef"]["name"] == "tracehouse"
    services = {d["metadata"]["name"]: d for _n, d in docs if d["kind"] == "Service"}
    ports = {p["port"] for p in services["tracehouse-collector"]["spec"]["ports"]}
    assert ports == {4317, 4318}
    assert services["tracehouse-collector-headless"]["spec"]["clusterIP"] == "None"
    secret = next(d for _n, d in docs if d["kind"] == "Secret")
    assert {"TRACEHOUSE_STORE", "CLICKHOUSE_PASSWORD", "TRACEHOUSE_API_KEYS"} <= set(secret["stringData"])

    statefulset = next(d for _n, d in docs if d["kind"] == "StatefulSet")
    (clickhouse,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert clickhouse["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert "requests" in clickhouse["resources"]
    # The ClickHouse overrides are the same files as compose mounts.
    config = next(
        d for _n, d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "clickhouse-config"
    )
    assert config["data"]["grafana.xml"] == (DEPLOY / "clickhouse/users.d/grafana.xml").read_text()
    assert config["data"]["tracehouse.xml"] == (DEPLOY / "clickhouse/config.d/tracehouse.xml").read_text()


# -- image ---------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1) for line in text.splitlines() if line and not line.startswith(("#", " "))
    ]
    stages = [rest for op, *rest in instructions if op == "FROM"]
    assert len(stages) == 2 and stages[0][0].endswith("AS build")
    # the one install recipe, which tests/project/test_packaging.py runs and checks too
    assert re.search(r"^RUN deploy/install-wheels\.sh \. /wheels /opt/tracehouse", text, re.M)
    assert re.search(r"^COPY --from=build ", text, re.M)
    user = [rest[0] for op, *rest in instructions if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*healthcheck\.py", text, re.M)
    assert re.search(r"^EXPOSE 4317 4318$", text, re.M)
    assert re.search(r'^CMD \["serve", "--host", "0.0.0.0"\]$', text, re.M)
    assert re.search(r"^VOLUME ", text, re.M)
    for op, *rest in instructions:
        if op == "COPY" and not rest[0].startswith("--from"):
            source = rest[0].split()[0]
            assert (REPO / source).exists(), source


def test_healthcheck_script_says_whether_the_collector_is_up(collector):
    script = str(DEPLOY / "healthcheck.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    up = subprocess.run(
        [sys.executable, script], env={**env, "TRACEHOUSE_HTTP_PORT": str(collector.http_port)}, timeout=30
    )
    assert up.returncode == 0
    down = subprocess.run(
        [sys.executable, script],
        env={**env, "TRACEHOUSE_HTTP_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert down.returncode == 1 and "healthz" in down.stderr


# -- Grafana -------------------------------------------------------------------------------------


def _dashboards() -> list[tuple[str, dict]]:
    return [
        (p.name, json.loads(p.read_text())) for p in sorted((DEPLOY / "grafana/dashboards").glob("*.json"))
    ]


def _queries(dashboard: dict) -> list[tuple[str, dict, str]]:
    """(where, datasource, SQL) of every panel target and query variable."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append(
                (f"panel {panel['title']!r}", target.get("datasource") or panel.get("datasource"), target)
            )
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable {var['name']}", var["datasource"], {"rawSql": var["query"]}))
    return [(where, ds, t["rawSql"]) for where, ds, t in out]


def test_grafana_provisioning_and_dashboards_use_only_the_provisioned_data_source():
    (ds,) = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/clickhouse.yaml").read_text())[
        "datasources"
    ]
    assert ds["uid"] == DATASOURCE_UID and ds["type"] == "grafana-clickhouse-datasource"
    assert ds["jsonData"]["defaultDatabase"] == "tracehouse"
    assert ds["jsonData"]["traces"]["defaultTable"] == "otel_traces"
    assert ds["secureJsonData"]["password"].startswith("$")  # from the environment, not in the file
    (provider,) = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tracehouse.yaml").read_text())[
        "providers"
    ]
    compose = (DEPLOY / "docker-compose.yml").read_text()
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in compose

    dashboards = _dashboards()
    assert dashboards
    for name, dashboard in dashboards:
        uids = {m.group(1) for m in re.finditer(r'"uid":\s*"([^"]+)"', json.dumps(dashboard["panels"]))}
        assert uids == {DATASOURCE_UID}, name
        queries = _queries(dashboard)
        assert queries, name
        for where, datasource, sql in queries:
            assert datasource == {"type": "grafana-clickhouse-datasource", "uid": DATASOURCE_UID}, (
                name,
                where,
            )
            assert sql.strip(), (name, where)
    (_, usage) = next(d for d in dashboards if d[1]["uid"] == "tracehouse-llm-usage")
    titles = " ".join(p["title"] for p in usage["panels"]).lower()
    for word in ("requests", "latency", "tokens", "cost", "trace"):
        assert word in titles
    traces = [p for p in usage["panels"] if p["type"] == "traces"]
    assert traces and traces[0]["targets"][0]["queryType"] == "traces"


FROM_S = BASE_NS // 10**9 - 3600
TO_S = BASE_NS // 10**9 + 86400


def grafana_to_sql(sql: str, values: dict[str, str]) -> str:
    """Expand the ClickHouse data source's macros and the dashboard variables as Grafana does."""
    return dashboard_sql(sql, values, FROM_S, TO_S)


# Panels that answer no rows while every call in range is priced.
ONLY_WITH_UNPRICED_CALLS = {"panel 'Unpriced calls by model'"}


def _dashboard_answers(collector, dashboard: dict, values: dict[str, str]) -> dict[str, list[dict]]:
    """Each panel's and variable's answer, as records, with the variables set to `values`."""
    answers = {}
    for where, _ds, sql in _queries(dashboard):
        result = collector.sql_raw(grafana_to_sql(sql, values))
        answers[where] = [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]
    return answers


def test_dashboard_sql_runs_on_a_real_store_and_answers_from_llm_spans(collector):
    service = unique("dash")
    trace_id = new_trace_id()
    spans = [
        make_span(
            "chat gpt-4o-mini",
            trace_id=trace_id,
            start_ns=BASE_NS + i * 1_000_000_000,
            duration_ns=(i + 1) * 100_000_000,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 100,
                "gen_ai.usage.output_tokens": 20,
            },
        )
        for i in range(5)
    ]
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.text
    wait_for(
        lambda: collector.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = '{service}'") == 5
    )

    (_, usage) = next(d for d in _dashboards() if d[1]["uid"] == "tracehouse-llm-usage")
    values = {"service": service, "model": "gpt-4o-mini", "trace_id": trace_id.hex()}
    answers = _dashboard_answers(collector, usage, values)
    for where, rows in answers.items():
        # Every call here is priced: only the unpriced series is empty.
        assert rows or where in ONLY_WITH_UNPRICED_CALLS, where
    assert answers["panel 'LLM requests'"] == [{"requests": 5}]
    assert answers["panel 'Unpriced calls'"] == [{"unpriced_calls": 0, "unpriced_tokens": 0}]
    assert answers["panel 'Total cost'"][0]["cost_usd"] > 0
    (tokens,) = answers["panel 'Tokens'"]  # five spans within one minute: one point
    assert (tokens["input"], tokens["output"]) == (500, 100)
    assert answers["panel 'Total tokens'"] == [{"tokens": 600}]
    by_model = answers["panel 'By model'"]
    assert by_model[0]["model"] == "gpt-4o-mini" and by_model[0]["requests"] == 5
    assert by_model[0]["input_tokens"] == 500 and by_model[0]["p99_ms"] >= by_model[0]["p50_ms"] > 0
    latency = answers["panel 'Latency percentiles'"]
    assert all(row["p99"] >= row["p50"] for row in latency)
    trace = answers["panel 'Trace ${trace_id}'"]
    assert len(trace) == 5 and {row["traceID"] for row in trace} == {trace_id.hex()}
    assert {"spanID", "parentSpanID", "serviceName", "operationName", "startTime", "duration", "tags"} <= set(
        trace[0]
    )
    assert answers["variable service"] and {"ServiceName": service} in answers["variable service"]
    # "All" turns a conditional filter into no filter.
    everything = collector.sql_raw(
        grafana_to_sql(
            usage["panels"][0]["targets"][0]["rawSql"], {**values, "service": "$__all", "model": "$__all"}
        )
    )
    assert everything["rows"][0][0] >= 5


def _cost_cli(collector, since: str, until: str, service: str, *extra: str) -> list[dict]:
    p = run_cli(
        "query", "cost", "--since", since, "--until", until, "--service", service,
        "--server", collector.http_url, "--format", "json", *extra,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _cost_rest(collector, **params: str) -> list[dict]:
    r = collector.session.get(f"{collector.http_url}/api/v1/query/cost", params=params, timeout=30)
    assert r.status_code == 200, r.text
    page = r.json()
    return [dict(zip(page["columns"], row, strict=True)) for row in page["rows"]]


def test_dashboard_cost_and_unpriced_calls_agree_with_query_cost_and_rest(collector):
    """Known answers: calls of two priced models, each expected cost computed apart with
    genai-prices' calc_price (the span's day at noon, as the collector prices), and calls of a
    model nobody prices. The dashboard's total cost and its unpriced calls, `tracehouse query
    cost` on both plans and REST /api/v1/query/cost must all give those numbers."""
    from genai_prices import Usage, calc_price

    service, mystery = unique("dash-cost"), f"mystery-llm-{unique('m')}"
    models = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic"), (mystery, "openai")]
    spans, priced, unpriced_calls, unpriced_tokens = [], {}, 0, 0
    for i in range(30):  # one call every 23 minutes: eleven and a half hours, so the rollup answers
        model, provider = models[i % 3]
        start = BASE_NS + i * 23 * 60 * 10**9
        inp, out, cached = 1000 + 37 * i, 10 + 3 * i, (100 + i if model == "gpt-4o-mini" and i % 2 else 0)
        attrs = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": out,
        }
        if cached:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cached
        spans.append(make_span(f"chat {model}", start_ns=start, duration_ns=10**8, attributes=attrs))
        if model == mystery:
            unpriced_calls, unpriced_tokens = unpriced_calls + 1, unpriced_tokens + inp + out
            continue
        day = time.gmtime(start // 10**9)
        noon = dt.datetime(day.tm_year, day.tm_mon, day.tm_mday, 12, tzinfo=dt.UTC)
        usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached or None)
        price = calc_price(usage, model, provider_id=provider, genai_request_timestamp=noon).total_price
        priced[model] = priced.get(model, Decimal(0)) + price
    total = sum(priced.values(), Decimal(0))
    assert total > 0 and unpriced_calls == 10
    r = collector.post("/v1/traces", trace_request(service, spans).SerializeToString())
    assert r.status_code == 200, r.text
    wait_for(
        lambda: collector.scalar(f"SELECT count() FROM otel_traces WHERE ServiceName = '{service}'") == 30
    )

    # The dashboard, as Grafana runs it: every model of the service.
    (_, usage_dashboard) = next(d for d in _dashboards() if d[1]["uid"] == "tracehouse-llm-usage")
    answers = _dashboard_answers(
        collector, usage_dashboard, {"service": service, "model": "$__all", "trace_id": "0" * 32}
    )
    assert all(rows for where, rows in answers.items() if where != "panel 'Trace ${trace_id}'"), answers
    (dash_total,) = answers["panel 'Total cost'"]
    # toFloat64 of a Decimal(…, 12) whose scaled integer is below 2**53 rounds once, as float() does.
    assert dash_total["cost_usd"] == float(total)
    assert answers["panel 'Unpriced calls'"] == [
        {"unpriced_calls": unpriced_calls, "unpriced_tokens": unpriced_tokens}
    ]
    by_model = {row["model"]: row for row in answers["panel 'By model'"]}
    assert set(by_model) == {m for m, _ in models}
    for model, cost in priced.items():
        assert by_model[model]["cost_usd"] == float(cost) and by_model[model]["unpriced_calls"] == 0
    assert by_model[mystery]["cost_usd"] is None  # unknown, not free
    assert (by_model[mystery]["unpriced_calls"], by_model[mystery]["unpriced_tokens"]) == (
        unpriced_calls,
        unpriced_tokens,
    )
    series = answers["panel 'Unpriced calls by model'"]
    assert {row["model"] for row in series} == {mystery}
    assert sum(row["unpriced_calls"] for row in series) == unpriced_calls
    assert {row["model"] for row in answers["panel 'Cost by model'"]} == set(priced)
    assert math.fsum(row["cost_usd"] for row in answers["panel 'Cost by model'"]) == pytest.approx(
        float(total)
    )
    recent = [row for row in answers["panel 'Recent LLM calls'"] if row["model"] == mystery]
    assert len(recent) == unpriced_calls and all(row["cost_usd"] is None for row in recent)
    assert {row["price_source"] for row in recent} == {"unpriced"}

    # `tracehouse query cost` on both plans and REST: the same numbers, exactly.
    since = dt.datetime.fromtimestamp(BASE_NS // 10**9 - 31, dt.UTC).isoformat()
    until = dt.datetime.fromtimestamp(BASE_NS // 10**9 + 12 * 3600 + 7, dt.UTC).isoformat()
    for plan in ("raw", "rollup"):
        (cli_total,) = _cost_cli(collector, since, until, service, "--plan", plan)
        (rest_total,) = _cost_rest(collector, since=since, until=until, service=service, plan=plan)
        for answer in (cli_total, rest_total):
            assert Decimal(answer["cost_usd"]) == total, plan
            assert (answer["unpriced_calls"], answer["unpriced_tokens"]) == (unpriced_calls, unpriced_tokens)
            assert float(Decimal(answer["cost_usd"])) == dash_total["cost_usd"]
        cli_models = {
            r["model"]: r
            for r in _cost_cli(collector, since, until, service, "--plan", plan, "--by", "model")
        }
        rest_models = {
            r["model"]: r
            for r in _cost_rest(collector, since=since, until=until, service=service, plan=plan, by="model")
        }
        for answer in (cli_models, rest_models):
            assert {m: Decimal(r["cost_usd"]) for m, r in answer.items() if m != mystery} == priced, plan
            assert answer[mystery]["cost_usd"] is None
            assert answer[mystery]["unpriced_calls"] == by_model[mystery]["unpriced_calls"]
    (listed,) = _cost_cli(collector, since, until, service, "--unpriced")
    assert (listed["model"], listed["calls"], listed["total_tokens"]) == (
        mystery,
        unpriced_calls,
        unpriced_tokens,
    )


# -- nginx: per-call gRPC balancing --------------------------------------------------------------


def _nginx_config_for(tmp: Path, grpc_port: int, http_port: int, collectors: list) -> Path:
    text = (DEPLOY / "nginx/nginx.conf").read_text()
    for i, c in enumerate(collectors, start=1):
        text = text.replace(f"collector-{i}:4317", f"127.0.0.1:{c.grpc_port}")
        text = text.replace(f"collector-{i}:4318", f"127.0.0.1:{c.http_port}")
    text = text.replace("listen 4317 http2;", f"listen 127.0.0.1:{grpc_port} http2;")
    text = text.replace("listen 4318;", f"listen 127.0.0.1:{http_port};")
    assert "collector-" not in text and "listen 4317" not in text
    temp = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp + "    access_log off;\n", 1)
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.slow
def test_nginx_spreads_grpc_calls_over_both_collectors_and_loses_none(start_collector, tmp_path):
    nginx = require_tool("nginx")
    collectors = [start_collector(name="proxied-1"), start_collector(name="proxied-2")]
    grpc_port, http_port = free_port(), free_port()
    config = _nginx_config_for(tmp_path, grpc_port, http_port, collectors)
    global_opts = f"daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;"
    test = subprocess.run([nginx, "-t", "-c", str(config), "-g", global_opts], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    proc = subprocess.Popen([nginx, "-c", str(config), "-g", global_opts], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{http_port}/healthz"), 20)
        service = unique("proxy")
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")  # one HTTP/2 connection
        export = channel.unary_unary(TRACE_SERVICE_EXPORT)
        for i in range(20):
            span = make_span(f"call-{i}", start_ns=BASE_NS + i)
            export(trace_request(service, [span]).SerializeToString(), timeout=30)
        channel.close()
        r = requests.post(
            f"http://127.0.0.1:{http_port}/v1/traces",
            data=trace_request(service, [make_span("over-http")]).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert r.status_code == 200, r.text

        def counts() -> list[int]:
            q = f"SELECT count() FROM otel_traces WHERE ServiceName = '{service}'"
            return [c.scalar(q) for c in collectors]

        # Every call was answered, and a collector answers once the rows are inserted: final.
        per_collector = counts()
        assert sum(per_collector) == 21, per_collector  # nothing lost, nothing twice
        assert min(per_collector) >= 5, per_collector  # balanced per call, not per connection
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cluster_example_config_provides_what_the_cluster_ddl_needs():
    import xml.etree.ElementTree as ET

    from tracehouse_collector.store import ddl

    root = ET.parse(DEPLOY / "clickhouse/cluster.example.xml").getroot()
    macros = {m.tag for m in root.find("macros")}
    used = set(re.findall(r"\{(\w+)\}", ddl.REPLICATION_PATH + "{replica}" + ddl.NODE_WIDE_REPLICA))
    assert used - {"database", "table"} <= macros  # the two ClickHouse fills in itself aside
    (cluster,) = list(root.find("remote_servers"))
    shards = cluster.findall("shard")
    assert len(shards) >= 2 and all(s.findtext("internal_replication") == "true" for s in shards)
    assert root.find("zookeeper") is not None
    statements = ddl.script(cluster.tag)
    assert any(f"Distributed('{cluster.tag}', 'tracehouse', 'otel_traces_local'" in s for s in statements)
