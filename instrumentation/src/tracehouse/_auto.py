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

from tracehouse import _config
from tracehouse._hooks import when_imported
from tracehouse.instrumentors import INSTRUMENTORS

_lock = threading.Lock()
_hooked: set[str] = set()


def _load(target: str) -> type:
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def _instrument_on_import(name: str, target: str, _module: object) -> None:
    _instrument(name, target)


def _instrument(name: str, target: str) -> None:
    try:
        _load(target)().instrument()  # BaseInstrumentor: a second call does nothing
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
    from tracehouse import _setup

    _setup.enable_lazy_setup()
    hook_instrumentors(names)
