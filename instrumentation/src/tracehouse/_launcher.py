"""`opentelemetry-instrument python app.py`: what the standard launcher finds through entry points.

The launcher instruments every `opentelemetry_instrumentor` entry point at start, and an
ordinary instrumentor imports its client library when instrumented. Ours are registered as the
deferring classes below instead: instrumenting one only asks for the library to be patched
when (and if) the application imports it, as `TRACEHOUSE_INSTRUMENT` does. So the launcher
imports no client library the application never uses (LiteLLM alone takes seconds to import
and fetches its price list).

`Configurator` is the `opentelemetry_configurator` entry point: it sets up the OpenTelemetry
SDK the way `tracehouse.init()` does (OTEL_* variables, default a local collector), unless the
launcher picked another configurator (e.g. opentelemetry-distro's), whose SDK our
instrumentors then use.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from tracehouse import _auto, _config, _setup
from tracehouse.instrumentors import INSTRUMENTORS


class _Deferred(BaseInstrumentor):  # type: ignore[misc]
    """Patch `library` when the application imports it; nothing is imported now."""

    library = ""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # the library may be absent: then its import hook never fires

    def _instrument(self, **kwargs: Any) -> None:
        _setup.enable_lazy_setup()
        _auto.hook_instrumentors([self.library])

    def _uninstrument(self, **kwargs: Any) -> None:
        module, target = INSTRUMENTORS[self.library]
        if module in sys.modules:  # only a library that was imported can have been patched
            _auto.instrumentor_class(target)().uninstrument()


class Anthropic(_Deferred):
    library = "anthropic"


class Bedrock(_Deferred):
    library = "bedrock"


class GoogleGenAI(_Deferred):
    library = "google_genai"


class Keras(_Deferred):
    library = "keras"


class Lightning(_Deferred):
    library = "lightning"


class LiteLLM(_Deferred):
    library = "litellm"


class Mistral(_Deferred):
    library = "mistralai"


class Ollama(_Deferred):
    library = "ollama"


class OpenAI(_Deferred):
    library = "openai"


class Sklearn(_Deferred):
    library = "sklearn"


class Transformers(_Deferred):
    library = "transformers"


class Configurator:
    """Set up tracing (and the GenAI metrics) at launch, so spans made through the plain
    OpenTelemetry API before any LLM call are exported too. (The launcher only calls
    `configure`; the SDK's own configurator base class would import every exporter.)"""

    def configure(self, **kwargs: Any) -> None:
        if _config.sdk_disabled():
            return
        try:
            _setup.setup_tracing()
        except Exception as exc:  # a bad exporter setting must not stop the application
            print(f"tracehouse: tracing not set up: {exc!r}", file=sys.stderr)
