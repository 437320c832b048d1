"""`python -m tracehouse sync [--spool DIR] [--endpoint URL]`: send the run spool by hand.

The same as the collector's `tracehouse sync`, for machines that have only the SDK installed.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tracehouse", description="Tracehouse SDK tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sync", help="send spooled run data to a collector")
    p.add_argument("--spool", help="spool directory (TRACEHOUSE_SPOOL_DIR, default ~/.tracehouse/spool)")
    p.add_argument(
        "--endpoint", help="collector OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT, default local)"
    )
    args = parser.parse_args(argv)

    from pathlib import Path

    from tracehouse._run_transport import SendError, default_spool_dir, sync

    spool = Path(args.spool).expanduser() if args.spool else default_spool_dir()
    if not spool.is_dir():
        print(f"tracehouse: no spool directory at {spool}", file=sys.stderr)
        return 1
    try:
        files, blobs = sync(spool, args.endpoint)
    except SendError as exc:
        print(f"tracehouse: {exc}; the spool at {spool} is kept", file=sys.stderr)
        return 1
    print(f"sent {files} batch(es) and {blobs} artifact(s) from {spool}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
