"""The CLI's HTTP/1.1 client for `--server http://...` (cli/server_client.py), against a real
HTTP server (the standard library's) answering the ways a server or a proxy in front of it may:
a Content-Length body, a chunked body, a body closed by the end of the connection, errors with
and without the collector's `{"error": ...}` message, and a redirect (followed through urllib).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tracehouse_collector.cli import server_client
from tracehouse_collector.cli.server_client import ServerError

BIG = "x" * 300_000  # more than one recv() and more than one chunk


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/length?a=1":
            body = json.dumps({"big": BIG, "query": "a=1"}).encode()
            self._send(200, body, Content_Length=str(len(body)))
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            body = json.dumps({"big": BIG}).encode()
            for i in range(0, len(body), 70_000):
                piece = body[i : i + 70_000]
                self.wfile.write(f"{len(piece):x};ext=1\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b'{"closed": true}')
            self.close_connection = True
        elif self.path == "/error":
            body = b'{"error": "unknown column `nope`"}'
            self._send(400, body, Content_Length=str(len(body)))
        elif self.path == "/plain-error":
            self._send(503, b"", Content_Length="0")
        elif self.path == "/moved":
            self._send(302, b"", Location="/length?a=1", Content_Length="0")
        elif self.path == "/cut-short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"only this")
            self.close_connection = True

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers["Content-Length"]))
        seen = {
            "payload": json.loads(sent),
            "content_type": self.headers["Content-Type"],
            "authorization": self.headers.get("Authorization"),
            "host": self.headers["Host"],
        }
        body = json.dumps(seen).encode()
        self._send(200, body, Content_Length=str(len(body)))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_bodies_by_length_chunks_and_close(server: str) -> None:
    assert server_client.call_json(server, "/length?a=1", None) == {"big": BIG, "query": "a=1"}
    assert server_client.call_json(server + "/", "/chunked", None) == {"big": BIG}
    assert server_client.call_json(server, "/until-close", None) == {"closed": True}


def test_post_sends_json_and_the_api_key(server: str) -> None:
    payload = {"sql": "SELECT 'é'", "n": [1, 2]}
    seen = server_client.call_json(server, "/echo", "key-1", payload)
    assert seen == {
        "payload": payload,
        "content_type": "application/json",
        "authorization": "Bearer key-1",
        "host": server.removeprefix("http://"),
    }


def test_errors_carry_the_servers_message(server: str) -> None:
    with pytest.raises(ServerError, match=r"^unknown column `nope`$"):
        server_client.call(server, "/error", None)
    with pytest.raises(ServerError, match=r"^HTTP 503$"):
        server_client.call(server, "/plain-error", None)
    with pytest.raises(ServerError, match="closed the connection after 9 of 100 bytes"):
        server_client.call(server, "/cut-short", None)
    with pytest.raises(ServerError, match=r"cannot reach the server at http://127\.0\.0\.1:9: .*refused"):
        server_client.call("http://127.0.0.1:9", "/healthz", None)


def test_a_redirect_is_followed(server: str) -> None:
    assert server_client.call_json(server, "/moved", None)["query"] == "a=1"


def test_a_broken_chunked_answer_is_an_error() -> None:
    with pytest.raises(ServerError, match="bad size line"):
        server_client._dechunk(b"zz\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(ServerError, match="ends early"):
        server_client._dechunk(b"10\r\nabc")
    with pytest.raises(ServerError, match="not HTTP/1.x"):
        server_client._parse_response(b"SSH-2.0-OpenSSH_9.6\r\n")
