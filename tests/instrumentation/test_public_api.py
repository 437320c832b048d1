"""`tracehouse` as its users' type checkers see it: typed (py.typed), the lazily loaded names
visible, precise signatures. A user's script is checked with mypy against the installed package."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tracehouse

USER_SCRIPT = """
import tracehouse


@tracehouse.trace
def plain(x: int) -> str:
    return str(x)


@tracehouse.trace(kind="tool", name="lookup", attributes={"k": "v"})
async def tool(city: str) -> float:
    return 1.0


reveal_type(plain)
reveal_type(tool)
with tracehouse.run("exp", params={"lr": 0.1}, tags={"team": "a"}) as run:
    reveal_type(run)
    run.log_metric("loss", 0.5, step=1)
    tracehouse.score("accuracy", 1.0, run=run)
    tracehouse.score("accuracy", label="good", run=run.id)
reveal_type(tracehouse.active_run())
with tracehouse.context(session_id="s-1", user_id="u-1"):
    pass
tracehouse.init(service_name="svc", instrument=["openai"])
kind: tracehouse.Kind = "agent"
version: str = tracehouse.__version__
client = tracehouse.Client("http://127.0.0.1:4318", api_key="k", output="polars")
reveal_type(client)
try:
    client.sql("SELECT 1", as_="arrow")
except tracehouse.TracehouseError as exc:
    status: int | None = exc.status
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-executable", sys.executable,
         str(script)],
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.timeout(300)
def test_a_users_script_type_checks_strictly_with_precise_types(tmp_path):
    done = _mypy(tmp_path, USER_SCRIPT)
    out = done.stdout
    assert done.returncode == 0, out
    assert 'Revealed type is "def (x: int) -> str"' in out, out
    assert 'Revealed type is "def (city: str) -> typing.Coroutine[Any, Any, float]"' in out, out
    assert 'Revealed type is "tracehouse._run.Run"' in out, out
    assert 'Revealed type is "tracehouse._run.Run | None"' in out, out
    assert 'Revealed type is "tracehouse._client.Client"' in out, out


@pytest.mark.timeout(300)
def test_mistakes_are_caught_before_running(tmp_path):
    done = _mypy(
        tmp_path,
        """
        import tracehouse

        @tracehouse.trace(kind="tol")
        def f() -> None: ...

        tracehouse.score("x", 1.0, run=42)
        tracehouse.run("exp", params=["lr"])
        tracehouse.Client(output="excel")
        """,
    )
    assert done.returncode == 1
    # "tol" is none of the kinds: no signature of trace() takes it
    assert 'app.py:4: error: No overload variant of "trace" matches argument type "str"' in done.stdout, done.stdout
    assert 'Argument "run" to "score" has incompatible type "int"' in done.stdout, done.stdout
    assert 'Argument "params" to "run" has incompatible type "list[str]"' in done.stdout, done.stdout
    assert 'Argument "output" to "Client" has incompatible type "Literal[\'excel\']"' in done.stdout, done.stdout


def test_lazy_names_are_exported_and_load_on_use():
    from tracehouse import _run, _trace

    assert tracehouse.Run is _run.Run and tracehouse.trace is _trace.trace
    assert {"Run", "Kind", "trace", "run", "score", "context", "init", "active_run", "Client"} <= set(dir(tracehouse))
    assert set(tracehouse.__all__) <= set(dir(tracehouse)) | {"__version__"}
    assert (Path(tracehouse.__file__).parent / "py.typed").is_file()
