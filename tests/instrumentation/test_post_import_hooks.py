"""Post-import hooks (`tracehouse._hooks`): the callback runs once the module is imported, and
the module itself imports exactly as it would without the hook."""

from __future__ import annotations

import importlib
import importlib.resources
import pkgutil
import sys

from helpers import unique
from tracehouse._hooks import when_imported


def test_hooked_package_reads_its_own_resources(tmp_path, monkeypatch):
    # Like litellm, which reads its bundled price map through importlib.resources at import.
    name = unique("hooked_pkg").replace("-", "_")
    package = tmp_path / name
    package.mkdir()
    (package / "data.json").write_text('{"ok": true}')
    (package / "__init__.py").write_text(
        "import importlib.resources\n"
        "DATA = importlib.resources.files(__name__).joinpath('data.json').read_text()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fired = []
    when_imported(name, lambda module: fired.append((module.__name__, module.DATA)))
    try:
        module = importlib.import_module(name)
        assert fired == [(name, '{"ok": true}')]
        assert module.__loader__ is module.__spec__.loader
        assert type(module.__loader__).__module__ != "tracehouse._hooks"
        assert pkgutil.get_data(name, "data.json") == b'{"ok": true}'
        assert importlib.resources.files(name).joinpath("data.json").is_file()
    finally:
        sys.modules.pop(name, None)


def test_callback_runs_now_for_a_module_already_imported():
    fired = []
    when_imported("json", lambda module: fired.append(module.__name__))
    assert fired == ["json"]
