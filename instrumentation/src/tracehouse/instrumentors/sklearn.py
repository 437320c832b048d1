"""scikit-learn, zero-code: every outermost `fit` (also `fit_transform`, `fit_predict`) records
a run with the estimator's params and training scores (see `tracehouse.integrations.sklearn`).

scikit-learn decorates its estimators' fit methods with `sklearn.base._fit_context` when their
modules are defined; hooked on the import of `sklearn.base`, this instrumentor replaces that
decorator before any estimator module exists, so no estimator class has to be imported here.
Classes already defined when instrument() runs (a late, explicit call) are wrapped directly.
Estimators outside scikit-learn that do not use `_fit_context` are not recorded automatically:
use `tracehouse.integrations.sklearn.log_fit`.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from tracehouse.instrumentors._training import TrainingInstrumentor

_MARK = "__tracehouse_fit__"
_enabled = False  # fit methods decorated while instrumented stay wrapped: uninstrument turns them off


def _wrap(fit: Any) -> Any:
    from tracehouse.integrations.sklearn import run_outermost_fit

    @functools.wraps(fit)
    def fit_and_record(estimator: Any, *args: Any, **kwargs: Any) -> Any:
        if not _enabled:
            return fit(estimator, *args, **kwargs)
        return run_outermost_fit(fit, estimator, args, kwargs)

    setattr(fit_and_record, _MARK, True)
    return fit_and_record


def _recording_fit_context(original: Any) -> Any:
    def fit_context(*args: Any, **kwargs: Any) -> Any:
        decorate = original(*args, **kwargs)

        def decorator(fit_method: Any) -> Any:
            decorated = decorate(fit_method)
            return _wrap(decorated) if fit_method.__name__ in _fit_methods() else decorated

        return decorator

    fit_context.__wrapped__ = original  # type: ignore[attr-defined]
    return fit_context


def _fit_methods() -> tuple[str, ...]:
    from tracehouse.integrations.sklearn import FIT_METHODS

    return FIT_METHODS


class SklearnInstrumentor(TrainingInstrumentor):
    name = "sklearn"
    packages = ("scikit-learn >= 1.3",)

    def patch(self) -> None:
        global _enabled
        import sklearn.base as base

        _enabled = True
        self._original_fit_context = base._fit_context
        base._fit_context = _recording_fit_context(base._fit_context)
        self._wrapped: list[tuple[type, str, Any]] = []
        for module_name, module in list(sys.modules.items()):
            if not module_name.startswith("sklearn.") or module is None:
                continue
            for obj in list(vars(module).values()):
                if not (isinstance(obj, type) and issubclass(obj, base.BaseEstimator)):
                    continue
                if obj.__module__ != module_name:
                    continue
                for method in _fit_methods():
                    fit = obj.__dict__.get(method)
                    if callable(fit) and not getattr(fit, _MARK, False):
                        setattr(obj, method, _wrap(fit))
                        self._wrapped.append((obj, method, fit))

    def unpatch(self) -> None:
        global _enabled
        import sklearn.base as base

        _enabled = False
        base._fit_context = self._original_fit_context
        for cls, method, fit in self._wrapped:
            setattr(cls, method, fit)
        self._wrapped = []
