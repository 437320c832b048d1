#!/usr/bin/env python3
"""Exit 0 when the collector on this host answers GET /healthz with 200, else 1.

Used by the Docker HEALTHCHECK (slim images have no curl). It follows the collector's own
settings: TRACEHOUSE_HTTP_PORT, and HTTPS when TRACEHOUSE_TLS_CERT is set (the certificate is
for the service name, not 127.0.0.1, so it is not verified here: this only asks "are you up").
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("TRACEHOUSE_HTTP_PORT") or "4318"
    tls = bool(os.environ.get("TRACEHOUSE_TLS_CERT"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/healthz"
    context = ssl._create_unverified_context() if tls else None  # noqa: S323 - liveness only
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as resp:
            return 0 if resp.status == 200 else 1
    except (OSError, ValueError) as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
