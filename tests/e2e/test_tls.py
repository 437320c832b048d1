"""TLS on both listeners from certificate files, with a CA and certificate made at test time.

Clients are the real OTel SDK exporters (gRPC and HTTP, trusting the CA through the standard
OTEL_EXPORTER_OTLP_CERTIFICATE variable), requests, and the `tracehouse` CLI.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import (
    REPO,
    TRACE_SERVICE_EXPORT,
    free_port,
    make_span,
    quote,
    run_cli,
    trace_request,
    tracehouse_cmd,
    unique,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

pytestmark = pytest.mark.timeout(180)

API_KEY = "tls-test-key-0123456789"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_cert(directory: Path, ca_name: str = "Tracehouse test CA") -> dict[str, Path]:
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("tracehouse"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class TlsServer:
    """`tracehouse serve --tls-cert --tls-key` on free ports (conftest's fixture speaks plain HTTP)."""

    def __init__(self, tmp: Path, pki: dict[str, Path], env: dict[str, str]) -> None:
        self.ca = str(pki["ca"])
        self.grpc_port, self.http_port = free_port(), free_port()
        self.data_dir = tmp / "state"
        self.log_path = tmp / "serve.log"
        args = [
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
            "--tls-cert",
            str(pki["cert"]),
            "--tls-key",
            str(pki["key"]),
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
        full_env.update(env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                tracehouse_cmd(*args),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=str(REPO),
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, self.log_path.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.https_url + "/healthz", verify=self.ca, timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def sql(self, statement: str):
        r = requests.post(
            self.https_url + "/api/v1/sql",
            json={"sql": statement},
            verify=self.ca,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_ca_and_cert(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server(tmp_path_factory, pki):
    s = TlsServer(tmp_path_factory.mktemp("tls"), pki, {"TRACEHOUSE_API_KEYS": API_KEY})
    yield s
    s.close()


def test_banner_says_tls(server):
    text = server.log_path.read_text()
    assert f"OTLP/gRPC  127.0.0.1:{server.grpc_port} (TLS)" in text
    assert f"https://127.0.0.1:{server.http_port}/v1/traces" in text


def test_https_otlp_and_rest(server):
    service = unique("tls-http")
    body = trace_request(service, [make_span("a"), make_span("b")]).SerializeToString()
    r = requests.post(
        server.https_url + "/v1/traces",
        data=body,
        verify=server.ca,
        timeout=30,
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {API_KEY}"},
    )
    assert r.status_code == 200, r.text
    assert server.sql(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == [[2]]
    # The key is still required over TLS.
    r = requests.post(
        server.https_url + "/v1/traces",
        data=body,
        verify=server.ca,
        timeout=30,
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert r.status_code == 401


def test_plain_http_and_untrusted_certificates_refused(server, tmp_path):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.http_port}/healthz", timeout=5)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.https_url + "/healthz", timeout=5)  # system CAs do not know ours
    other = make_ca_and_cert(tmp_path / "other", "Another CA")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(server.https_url + "/healthz", verify=str(other["ca"]), timeout=5)


def test_grpc_plaintext_client_refused(server):
    body = trace_request(unique("tls-plain"), [make_span()]).SerializeToString()
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        stub = channel.unary_unary(TRACE_SERVICE_EXPORT, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            stub(body, metadata=(("authorization", f"Bearer {API_KEY}"),), timeout=5)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _exporter(transport: str, server: TlsServer):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"https://{server.grpc_endpoint}", timeout=10)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=server.https_url + "/v1/traces", timeout=10)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_otel_sdk_exporters_over_tls(server, monkeypatch, transport):
    # What a user sets: the CA to trust and the key, in the standard OTLP variables.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", server.ca)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{API_KEY}")
    # requests lets these variables override the exporter's CA file; a CI image may set them.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    service = unique(f"tls-sdk-{transport}")
    exporter = _exporter(transport, server)
    results: list[SpanExportResult] = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span) -> None:
            results.append(self.span_exporter.export((span,)))

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(Recording(exporter))
    with provider.get_tracer("tls-tests").start_as_current_span("call"):
        pass
    provider.shutdown()
    assert results == [SpanExportResult.SUCCESS]
    assert server.sql(f"SELECT count() FROM otel_traces WHERE ServiceName = {quote(service)}") == [[1]]


def test_cli_over_https(server):
    # urllib in the CLI trusts the CA named by SSL_CERT_FILE, as any OpenSSL client does.
    p = run_cli(
        "sql",
        "SELECT 7 AS seven",
        "--server",
        server.https_url,
        "--format",
        "json",
        "--api-key",
        API_KEY,
        env={"SSL_CERT_FILE": server.ca},
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == [{"seven": 7}]
    p = run_cli("sql", "SELECT 7", "--server", server.https_url, "--api-key", API_KEY)
    assert p.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize(
    "case,expected",
    [
        ("cert-only", "needs both a certificate and a key"),
        ("empty", "TRACEHOUSE_TLS_CERT (--tls-cert) is empty or not set"),
        ("missing-file", "cannot read the TLS certificate file"),
        ("not-pem", "is not PEM"),
        ("wrong-key", "cannot use TLS certificate"),
    ],
)
def test_bad_tls_settings_stop_the_start(pki, tmp_path, case, expected):
    other = make_ca_and_cert(tmp_path / "other")
    not_pem = tmp_path / "junk.pem"
    not_pem.write_bytes(b"\x00junk")
    env = {
        "cert-only": {"TRACEHOUSE_TLS_CERT": str(pki["cert"])},
        "empty": {"TRACEHOUSE_TLS_CERT": "", "TRACEHOUSE_TLS_KEY": ""},
        "missing-file": {
            "TRACEHOUSE_TLS_CERT": str(tmp_path / "nope.pem"),
            "TRACEHOUSE_TLS_KEY": str(pki["key"]),
        },
        "not-pem": {"TRACEHOUSE_TLS_CERT": str(not_pem), "TRACEHOUSE_TLS_KEY": str(pki["key"])},
        "wrong-key": {"TRACEHOUSE_TLS_CERT": str(pki["cert"]), "TRACEHOUSE_TLS_KEY": str(other["key"])},
    }[case]
    p = run_cli(
        "serve",
        "--data-dir",
        str(tmp_path / "d"),
        "--grpc-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        env=env,
        timeout=60,
    )
    assert p.returncode != 0
    assert expected in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
