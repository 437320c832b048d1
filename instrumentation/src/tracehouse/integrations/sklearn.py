"""scikit-learn: an estimator's params and its scores on the data it was fitted on, as a run.

    from tracehouse.integrations.sklearn import log_fit
    clf.fit(X, y)
    log_fit(clf, X, y)          # into the active run, or a run of its own

Params: `get_params()` (nested estimators as their repr) and `sklearn.estimator`, the class; for a
search (`GridSearchCV`, …) also `best.<param>`. Metrics: `training_score` (`estimator.score`),
and for classifiers `training_accuracy`, `training_f1`, `training_precision`, `training_recall`
(macro averages), for regressors `training_mse`, `training_rmse`, `training_mae`, `training_r2`;
a search adds `best_cv_score`. Scoring predicts on the training data once more; set
TRACEHOUSE_SKLEARN_SCORES=0 to skip it where that is slow (nearest neighbours on big data).

With TRACEHOUSE_INSTRUMENT=1 every outermost `fit` is a run: the fits a Pipeline, a search or
an ensemble makes inside it (in this process, its threads or the worker processes it starts)
are not runs of their own.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

from tracehouse.integrations._common import TrainingRun, param_value, warn

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
# Set while an outermost fit runs, so that joblib worker processes it starts record nothing.
NESTED_ENV = "TRACEHOUSE_SKLEARN_IN_FIT"

_lock = threading.Lock()
_active_fits = 0


def estimator_params(estimator: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"sklearn.estimator": type(estimator).__qualname__}
    try:
        for key, value in estimator.get_params(deep=True).items():
            params[key] = param_value(value)
    except Exception as exc:  # a third-party estimator with a broken get_params
        warn(f"could not read {type(estimator).__name__}.get_params(): {exc!r}")
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, dict):
        params.update({f"best.{k}": param_value(v) for k, v in best.items()})
    return params


def training_metrics(estimator: Any, X: Any, y: Any = None) -> dict[str, float]:
    """Scores of a fitted estimator on its training data (nothing without y)."""
    from sklearn.base import is_classifier, is_regressor

    metrics: dict[str, float] = {}
    best = getattr(estimator, "best_score_", None)
    if isinstance(best, int | float) and math.isfinite(best):
        metrics["best_cv_score"] = float(best)
    if (
        y is None
        or X is None
        or os.environ.get("TRACEHOUSE_SKLEARN_SCORES", "1").strip().lower() in ("0", "false")
    ):
        return metrics
    if hasattr(estimator, "score"):
        metrics["training_score"] = float(estimator.score(X, y))
    if not hasattr(estimator, "predict"):
        return metrics
    from sklearn import metrics as m

    if is_classifier(estimator):
        y_pred = estimator.predict(X)
        metrics["training_accuracy"] = float(m.accuracy_score(y, y_pred))
        kw = {"average": "macro", "zero_division": 0}
        metrics["training_f1"] = float(m.f1_score(y, y_pred, **kw))
        metrics["training_precision"] = float(m.precision_score(y, y_pred, **kw))
        metrics["training_recall"] = float(m.recall_score(y, y_pred, **kw))
    elif is_regressor(estimator):
        y_pred = estimator.predict(X)
        mse = float(m.mean_squared_error(y, y_pred))
        metrics.update(
            training_mse=mse,
            training_rmse=math.sqrt(mse),
            training_mae=float(m.mean_absolute_error(y, y_pred)),
            training_r2=float(m.r2_score(y, y_pred)),
        )
    return metrics


def log_fit(estimator: Any, X: Any = None, y: Any = None, run: Any = None) -> Any:
    """Log a fitted estimator's params and training scores; returns the run written to."""
    training = TrainingRun("sklearn", name=type(estimator).__name__, run=run)
    try:
        training.log_params(estimator_params(estimator))
        training.log_metrics(training_metrics(estimator, X, y))
    except BaseException as exc:
        training.finish(error=exc)
        raise
    training.finish()
    return training.run


def _fit_args(args: tuple, kwargs: dict) -> tuple[Any, Any]:
    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    return X, y


def run_outermost_fit(fit: Any, estimator: Any, args: tuple, kwargs: dict) -> Any:
    """Call `fit`; when it is the outermost fit in this process, record it as a run."""
    global _active_fits
    if os.environ.get(NESTED_ENV):
        return fit(estimator, *args, **kwargs)
    with _lock:
        outermost = _active_fits == 0
        _active_fits += 1
    if not outermost:
        try:
            return fit(estimator, *args, **kwargs)
        finally:
            with _lock:
                _active_fits -= 1
    os.environ[NESTED_ENV] = "1"
    training = None
    try:
        try:
            training = TrainingRun("sklearn", name=type(estimator).__name__, attach=False)
            training.log_params(estimator_params(estimator))
        except Exception as exc:  # recording must never stop the training
            warn(f"could not record the {type(estimator).__name__} fit: {exc!r}")
        try:
            result = fit(estimator, *args, **kwargs)
        except BaseException as exc:
            if training is not None:
                training.finish(error=exc)
            raise
        if training is not None:
            try:
                # Searches learn their best params during fit.
                best = getattr(estimator, "best_params_", None)
                if isinstance(best, dict):
                    training.log_params({f"best.{k}": param_value(v) for k, v in best.items()})
                training.log_metrics(training_metrics(estimator, *_fit_args(args, kwargs)))
            except Exception as exc:
                warn(f"could not score the fitted {type(estimator).__name__}: {exc!r}")
            training.finish()
        return result
    finally:
        os.environ.pop(NESTED_ENV, None)
        with _lock:
            _active_fits -= 1
