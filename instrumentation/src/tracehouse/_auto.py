"""Activation: patch each requested client library when it is imported (post-import hooks),
whatever the import order. Nothing here imports a client library, and at interpreter start
nothing heavier than the standard library is imported: the OpenTelemetry SDK is set up on the
first instrumented call (see `_setup.ensure_tracing`), by which time an application that has
its own OpenTelemetry set-up has made it, and Tracehouse attaches to it.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from collections.abc import Iterable

from tracehouse import _config, _setup
from tracehouse._hooks import when_imported
from tracehouse.instrumentors import INSTRUMENTORS

_lock = threading.Lock()
_hooked: set[str] = set()


def instrumentor_class(target: str) -> type:
    """The instrumentor class named by an INSTRUMENTORS target ("module:Class")."""
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _instrument_on_import(name: str, target: str, _module: object) -> None:
    _instrument(name, target)


def _instrument(name: str, target: str) -> None:
    try:
        instrumentor_class(target)().instrument()  # BaseInstrumentor: a second call does nothing
    except Exception as exc:  # a broken instrumentor must not break the application
        print(f"tracehouse: could not instrument {name}: {exc!r}", file=sys.stderr)


def hook_instrumentors(names: Iterable[str] | None) -> list[str]:
    """Patch the named libraries (all when None) as they get imported; returns those hooked."""
    wanted = set(INSTRUMENTORS) if names is None else {n.strip().lower() for n in names}
    unknown = wanted - set(INSTRUMENTORS)
    if unknown:
        print(
            f"tracehouse: unknown instrumentors {sorted(unknown)}; known: {', '.join(sorted(INSTRUMENTORS))}",
            file=sys.stderr,
        )
    disabled = _config.disabled_instrumentors()
    hooked = []
    with _lock:
        for name in sorted(wanted & set(INSTRUMENTORS)):
            if name in _hooked or name in disabled or f"tracehouse_{name}" in disabled:
                continue
            module, target = INSTRUMENTORS[name]
            _hooked.add(name)
            hooked.append(name)
            when_imported(module, functools.partial(_instrument_on_import, name, target))
    return hooked


def activate_from_environment() -> None:
    """What TRACEHOUSE_INSTRUMENT asks for, at interpreter start."""
    if _config.sdk_disabled():
        return
    names = _config.requested_instrumentors()
    if names is not None and not names:
        return
    _setup.enable_lazy_setup()
    hook_instrumentors(names)


def init(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    headers: dict[str, str] | None = None,
    instrument: Iterable[str] | str | None = "all",
) -> None:
    """Send this process's spans to Tracehouse and instrument LLM client libraries.

    endpoint: the collector's OTLP base URL (default: OTEL_EXPORTER_OTLP_ENDPOINT, else a
    local `tracehouse serve`). An existing OpenTelemetry TracerProvider is used as it is.
    instrument: "all", a list of names such as ["openai"], or None for none.
    """
    if _config.sdk_disabled():
        return
    _setup.setup_tracing(service_name=service_name, endpoint=endpoint, headers=headers)
    if instrument == "all":
        hook_instrumentors(None)
    elif instrument:
        hook_instrumentors([instrument] if isinstance(instrument, str) else instrument)
