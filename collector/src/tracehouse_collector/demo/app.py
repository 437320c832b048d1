"""The demo run from end to end: check that a collector answers, point the SDK at it, send the
LLM traffic (llm_app.py) and the training runs (training.py), flush, and clean up. Everything
it writes is derived from the seed (ids and wall-clock times aside)."""

from __future__ import annotations

import os
import random
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tracehouse_collector.demo import llm_app, training
from tracehouse_collector.demo.summary import DemoError, Summary

# -- the collector ------------------------------------------------------------------------------


def check_server(server: str, api_key: str | None = None) -> None:
    req = urllib.request.Request(server.rstrip("/") + "/healthz")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise DemoError(
                f"the collector at {server} wants an API key: pass --api-key or set TRACEHOUSE_API_KEY"
            ) from None
        raise DemoError(f"the collector at {server} answered /healthz with HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DemoError(
            f"no Tracehouse collector answers at {server} ({reason}); start one with `tracehouse serve`"
            " or point --server (TRACEHOUSE_SERVER) at one"
        ) from None


# -- the whole demo -----------------------------------------------------------------------------


def run_demo(server: str, seed: int = 7, days: int = 7, api_key: str | None = None) -> Summary:
    """Send the demo data to the collector at `server`; returns what was sent."""
    server = server.rstrip("/")
    check_server(server, api_key)
    summary = Summary()
    workdir = Path(tempfile.mkdtemp(prefix="tracehouse-demo-"))
    # The SDK reads its endpoint and spool directory from the environment; set them before use.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = server
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    for signal in ("TRACES", "METRICS", "LOGS"):  # the demo's --server wins over a shell's settings
        os.environ.pop(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", None)
        os.environ.pop(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", None)
    os.environ.pop("OTEL_SDK_DISABLED", None)
    os.environ["TRACEHOUSE_SPOOL_DIR"] = str(workdir / "spool")
    os.environ.setdefault("OTEL_METRIC_EXPORT_INTERVAL", "1000")
    if api_key:
        os.environ["TRACEHOUSE_API_KEY"] = api_key
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None

    import tracehouse
    from opentelemetry import metrics, trace

    tracehouse.init(service_name="demo-support-bot", endpoint=server, headers=headers, instrument=None)
    provider = trace.get_tracer_provider()
    rng = random.Random(seed)
    try:
        try:
            import openai  # noqa: F401
        except ImportError:
            summary.notes.append(
                "openai is not installed: only the backdated history spans were sent, no live agent"
            )
        else:
            llm_app.agent_app(provider, random.Random(rng.random()), summary)
        llm_app.history(provider, random.Random(rng.random()), days, summary)
        training.training_runs(random.Random(rng.random()), workdir, summary)
    finally:
        try:
            _flush(provider, metrics.get_meter_provider())
        finally:
            _remove_tree(workdir, summary)
    return summary


def _flush(provider: Any, meter_provider: Any) -> None:
    from tracehouse import _run, _score

    _run.end_unfinished_runs()
    ok = all(
        (
            provider.force_flush(30_000) if hasattr(provider, "force_flush") else True,
            _score.force_flush(30_000),
            _run.flush(60.0),
            meter_provider.force_flush(10_000) if hasattr(meter_provider, "force_flush") else True,
        )
    )
    if not ok:
        raise DemoError("not everything reached the collector in time (see the messages above)")


def _remove_tree(workdir: Path, summary: Summary) -> None:
    import shutil

    spool = workdir / "spool"
    left = [p for p in spool.rglob("*.pb")] if spool.exists() else []
    if left:
        summary.notes.append(f"{len(left)} spool files were not delivered and are dropped")
    shutil.rmtree(workdir, ignore_errors=True)
