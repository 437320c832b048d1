"""TLS for both listeners from PEM files (TRACEHOUSE_TLS_CERT / TRACEHOUSE_TLS_KEY).

The same certificate and key serve OTLP/gRPC and HTTP. Both are loaded once at start-up, so
a wrong path or a key that does not match the certificate stops `serve` with a clear message
instead of failing the first handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsConfigError(ValueError):
    """The TLS settings cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    cert_pem: bytes
    key_pem: bytes

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(str(self.cert), str(self.key))
        except ssl.SSLError as exc:
            raise TlsConfigError(
                f"cannot use TLS certificate {self.cert} with key {self.key}: {exc.reason or exc}"
            ) from None
        # OTLP/HTTP clients and browsers both speak HTTP/1.1 here.
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.key_pem, self.cert_pem)])


def load_tls(cert: str | None, key: str | None) -> TlsFiles | None:
    """The TLS files to serve with, or None for plain text. Raises TlsConfigError."""
    if cert is None and key is None:
        return None
    if not cert or not key:  # one missing, or set but empty: refuse rather than serve plain text
        missing = "TRACEHOUSE_TLS_CERT (--tls-cert)" if not cert else "TRACEHOUSE_TLS_KEY (--tls-key)"
        raise TlsConfigError(f"TLS needs both a certificate and a key; {missing} is empty or not set")
    pems = []
    for what, name in (("certificate", cert), ("key", key)):
        path = Path(name).expanduser()
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TlsConfigError(f"cannot read the TLS {what} file {path}: {exc.strerror or exc}") from None
        if b"-----BEGIN" not in data:
            raise TlsConfigError(f"the TLS {what} file {path} is not PEM")
        pems.append((path, data))
    files = TlsFiles(cert=pems[0][0], key=pems[1][0], cert_pem=pems[0][1], key_pem=pems[1][1])
    files.ssl_context()  # checks that the key matches the certificate, before anything listens
    return files
