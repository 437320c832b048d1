"""Post-import hooks: run a callback when a module is first imported (or now, if it already is).

A small meta-path finder from the standard library only, so that the start-up hook costs
nothing measurable: importing `wrapt` at start-up alone would cost tens of milliseconds.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

_lock = threading.RLock()
_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}


# Plain classes with the finder and loader protocols' methods: importing importlib.abc here
# would cost more than the rest of the start-up hook.
class _Loader:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.inner.create_module(spec)

    def __getattr__(self, name: str) -> Any:  # the rest of the inner loader (is_package, get_data, ...)
        return getattr(self.inner, name)

    def exec_module(self, module: ModuleType) -> None:
        # The module sees its own loader, as without the hook: importlib.resources, pkgutil and
        # friends ask it for resource readers and data (litellm reads its bundled price map so).
        module.__loader__ = self.inner
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self.inner
        self.inner.exec_module(module)
        _fire(module.__name__, module)


class _Finder:
    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname not in _callbacks:
            return None
        # Let the other finders locate the module, then wrap its loader.
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_finder = _Finder()


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        callbacks = _callbacks.pop(name, [])
    for callback in callbacks:
        try:
            callback(module)
        except Exception as exc:  # a hook must never break the application's import
            print(f"tracehouse: post-import hook for {name} failed: {exc!r}", file=sys.stderr)


def when_imported(name: str, callback: Callable[[ModuleType], None]) -> None:
    """Call `callback(module)` once `name` is imported; immediately if it already is."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    with _lock:
        _callbacks.setdefault(name, []).append(callback)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
