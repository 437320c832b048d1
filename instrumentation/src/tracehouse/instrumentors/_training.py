"""What the training-loop instrumentors share: OpenTelemetry's BaseInstrumentor life cycle
(instrument once, uninstrument, dependency checks) around a patch()/unpatch() pair.

They create runs (`tracehouse.run`), not spans: the run transport sends them, so no tracer or
meter is set up here. instrument() patches when the framework gets imported (at once if it
already is): `opentelemetry-instrument` calls every instrumentor at start-up, and importing
torch or transformers there would cost seconds in processes that never train.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class TrainingInstrumentor(BaseInstrumentor):
    name: ClassVar[str]  # Tracehouse's name: "sklearn"
    packages: ClassVar[Collection[str]]  # requirement strings of the instrumented distribution

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.packages

    def _instrument(self, **kwargs: Any) -> None:
        from tracehouse._hooks import when_imported
        from tracehouse.instrumentors import INSTRUMENTORS

        when_imported(INSTRUMENTORS[self.name][0], lambda _module: self.patch())

    def _uninstrument(self, **kwargs: Any) -> None:
        self.unpatch()

    def patch(self) -> None:
        raise NotImplementedError

    def unpatch(self) -> None:
        raise NotImplementedError
