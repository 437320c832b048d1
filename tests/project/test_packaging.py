"""What users install is what works: both distributions as wheels, installed away from the checkout.

The wheels are built and installed by `deploy/install-wheels.sh`, the same script the container
image runs, into a new virtual environment outside the repository; every other test uses the
editable install in the checkout and so cannot see a file missing from a wheel. Third-party
wheels come from the wheelhouse `make test` fills (.venv/wheelhouse), so nothing is downloaded
here.
"""

from __future__ import annotations

import html.parser
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import yaml
from collectors import Collector
from helpers import REPO, unique, wait_for

WHEELHOUSE = REPO / ".venv" / "wheelhouse"
INSTALL_SCRIPT = REPO / "deploy" / "install-wheels.sh"
VERSION = (REPO / "VERSION").read_text().strip()
DISTRIBUTIONS = {"tracehouse": REPO / "instrumentation", "tracehouse_collector": REPO / "collector"}

pytestmark = pytest.mark.slow


def _offline() -> list[str]:
    if not any(WHEELHOUSE.glob("chdb-*.whl")):
        pytest.fail(f"{WHEELHOUSE} holds no wheels: `make test` fills it before running the tests")
    return ["--no-index", "--find-links", str(WHEELHOUSE)]


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing from the checkout's venv or the test settings."""
    drop = ("TRACEHOUSE_", "OTEL_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args, cwd=str(cwd), env=_clean_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def _pip_install(venv: Path, wheels: Path, *requirements: str) -> None:
    _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            *_offline(),
            "--find-links",
            str(wheels),
            *requirements,
        ],
        cwd=venv,
    )


class Install:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.wheels = root / "wheels"
        self.venv = root / "venv"
        self.work = root / "work"  # the user's directory: no checkout anywhere near it
        self.work.mkdir()

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def wheel(self, dist: str) -> Path:
        (found,) = self.wheels.glob(f"{dist}-*-py3-none-any.whl")
        return found

    def run(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return _run(list(args), self.work, timeout=timeout, **env)


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """Both distributions built and installed the way deploy/Dockerfile does it."""
    inst = Install(tmp_path_factory.mktemp("packaging"))
    _run(
        ["sh", str(INSTALL_SCRIPT), str(REPO), str(inst.wheels), str(inst.venv), *_offline()],
        cwd=inst.root,
        PYTHON=sys.executable,
    )
    return inst


@pytest.fixture(scope="module")
def served(install: Install) -> Iterator[Collector]:
    """`tracehouse serve` from the wheel install, started in the user's directory."""
    collector = Collector(
        install.root / "state",
        command=[install.bin("tracehouse")],
        cwd=install.work,
        env={"PATH": _clean_env()["PATH"]},
    )
    try:
        yield collector.start()
    finally:
        collector.close()


# -- what the wheels and source distributions hold ------------------------------------------------


def _tracked_package_files(project: Path) -> set[str]:
    """Files under PROJECT/src as the wheel names them (the .pth hook sits at the wheel's root)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "src"], cwd=str(project), capture_output=True, text=True, check=True
    ).stdout
    files = {name.removeprefix("src/") for name in listing.split("\0") if name}
    assert files, f"git lists no files under {project}/src"
    return files


def _wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return {n for n in zf.namelist() if ".dist-info/" not in n}


def _wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return zf.read(name).decode()


@pytest.mark.parametrize("package", sorted(DISTRIBUTIONS))
def test_each_wheel_ships_exactly_the_tracked_files_of_its_package(install: Install, package: str) -> None:
    tracked = _tracked_package_files(DISTRIBUTIONS[package])
    shipped = _wheel_files(install.wheel(package))
    assert tracked - shipped == set(), "tracked files missing from the wheel"
    assert shipped - tracked == set(), "files in the wheel that git does not track"
    if package == "tracehouse_collector":  # the files whose absence broke the UI once
        pages = {f for f in shipped if f.startswith("tracehouse_collector/ui/static/pages/")}
        assert len(pages) >= 9, pages


@pytest.mark.parametrize("package", sorted(DISTRIBUTIONS))
def test_source_distribution_builds_the_same_wheel(install: Install, tmp_path: Path, package: str) -> None:
    """A wheel built from the sdist (as pip does from an index without wheels) loses nothing,
    and keeps the version although the sdist has no VERSION file beside it."""
    project = DISTRIBUTIONS[package]
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path), str(project)],
        cwd=tmp_path,
    )
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as tf:
        tf.extractall(tmp_path / "unpacked", filter="data")
    (tree,) = (tmp_path / "unpacked").iterdir()
    _run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "w"),
            str(tree),
        ],
        cwd=tmp_path,
    )
    (from_sdist,) = (tmp_path / "w").glob("*.whl")
    assert from_sdist.name == install.wheel(package).name
    assert _wheel_files(from_sdist) == _wheel_files(install.wheel(package))
    assert f"\nVersion: {VERSION}\n" in _wheel_metadata(from_sdist)


def test_one_version_everywhere(install: Install, served: Collector) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", VERSION), VERSION
    for package in DISTRIBUTIONS:
        assert f"\nVersion: {VERSION}\n" in _wheel_metadata(install.wheel(package)), package
    assert install.run(install.bin("tracehouse"), "--version").stdout.strip() == f"tracehouse {VERSION}"
    sdk = install.run(install.bin("python"), "-c", "import tracehouse; print(tracehouse.__version__)")
    assert sdk.stdout.strip() == VERSION
    assert served.health().json()["version"] == VERSION
    # The manifests run the image of this version.
    for path in sorted((REPO / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for container in _containers(doc):
                if "tracehouse" in container["image"]:
                    assert container["image"].endswith(f":{VERSION}"), (path.name, container["image"])


def _containers(doc: dict | None) -> list[dict]:
    spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
    return [*spec.get("containers", []), *spec.get("initContainers", [])]


# -- the installed collector ------------------------------------------------------------------------


class _Refs(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith(("#", "data:", "mailto:")):
                self.refs.append(value)


# Static and dynamic ES module imports, re-exports, and CSS url()s.
_JS_IMPORT = re.compile(
    r"""(?:\bimport\s*(?:[\w*{}\s,]+\s*from\s*)?|\bexport\s*[\w*{}\s,]+\s*from\s*|\bimport\s*\(\s*)["']([^"']+)["']"""
)
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}


def test_every_ui_asset_loads_from_the_wheel_install(served: Collector) -> None:
    """Walk from / through every referenced file and ES module import: all answer 200 with the
    type a browser needs (a module script of another type is refused) and the checkout's bytes."""
    static = REPO / "collector" / "src" / "tracehouse_collector" / "ui" / "static"
    base = served.http_url + "/"
    seen: set[str] = set()
    queue = [base]
    while queue:
        url = queue.pop()
        if url in seen:
            continue
        seen.add(url)
        r = served.session.get(url, timeout=30)
        assert r.status_code == 200, f"{url}: HTTP {r.status_code}"
        path = urlparse(url).path
        suffix = Path(path).suffix or ".html"
        if suffix in _TYPES:
            assert r.headers["Content-Type"].split(";")[0] in (_TYPES[suffix], "application/javascript"), url
        if path.startswith("/ui/"):
            assert r.content == (static / path.removeprefix("/ui/")).read_bytes(), url
        if suffix == ".html":
            parser = _Refs()
            parser.feed(r.text)
            found = parser.refs
        elif suffix == ".js" and "/vendor/" not in path:
            found = _JS_IMPORT.findall(r.text)
        elif suffix == ".css":
            found = _CSS_URL.findall(r.text)
        else:
            found = []
        for ref in found:
            target = urljoin(url, ref).split("#")[0].split("?")[0]
            if urlparse(target).netloc == urlparse(base).netloc:
                queue.append(target)
    loaded = {urlparse(u).path.removeprefix("/ui/") for u in seen}
    # The walk reached every page module, the shared modules and the vendored charts.
    pages = {f"pages/{p.name}" for p in (static / "pages").glob("*.js")}
    assert pages and pages <= loaded, pages - loaded
    assert {"app.js", "lib.js", "style.css", "vendor/echarts/echarts.min.js"} <= loaded


def _subcommands(help_text: str) -> list[str]:
    """The sub-command names argparse lists under 'positional arguments' as {a,b,c}."""
    section = help_text.split("positional arguments:", 1)
    if len(section) < 2:
        return []
    match = re.search(r"^\s+\{([\w,-]+)\}\s*$", section[1], re.M)
    return match.group(1).split(",") if match else []


def test_every_command_answers_help(install: Install) -> None:
    tracehouse = install.bin("tracehouse")
    commands: list[list[str]] = []
    pending: list[list[str]] = [[]]
    while pending:
        command = pending.pop()
        out = install.run(tracehouse, *command, "--help", timeout=120).stdout
        assert out.startswith("usage: tracehouse" + "".join(f" {c}" for c in command)), out
        commands.append(command)
        pending += [[*command, sub] for sub in _subcommands(out)]
    names = {" ".join(c) for c in commands}
    # The contract's commands are all there, with their sub-commands.
    for name in (
        "serve",
        "sql",
        "query",
        "query latency",
        "traces list",
        "traces show",
        "runs list",
        "demo",
        "schema",
    ):
        assert name in names, sorted(names)
    assert len(names) > 25, sorted(names)


def test_demo_fills_the_wheel_install(install: Install, served: Collector) -> None:
    """`tracehouse demo` with the `demo` extra: every part runs (no part skipped for a missing
    package) and its data arrives."""
    _pip_install(install.venv, install.wheels, "tracehouse-collector[demo]")
    done = install.run(install.bin("tracehouse"), "demo", "--server", served.http_url, "--seed", "1")
    assert "note:" not in done.stdout, done.stdout
    sent = re.search(
        r"(\d+) LLM calls .*\n.*?(\d+) backdated spans\n\s+runs\s+(\d+) runs.* (\d+) model", done.stdout
    )
    assert sent, done.stdout
    calls, history, runs, models = map(int, sent.groups())
    assert calls > 0 and history > 0 and runs > 0 and models == 1, done.stdout
    arrived = (
        "SELECT (SELECT count() FROM runs FINAL) AS runs, (SELECT count() FROM models FINAL) AS models, "
        "(SELECT count() FROM otel_traces WHERE ServiceName = 'demo-support-bot' AND GenAIOperation = 'chat') AS chat"
    )
    # every live call is a chat span; each backdated history pair is an agent span and its chat span
    expected = {"runs": runs, "models": models, "chat": calls + history // 2}
    wait_for(lambda: served.sql(arrived)[0] == expected, timeout=60)
    assert served.sql(arrived)[0] == expected


_APP = """
import os, openai
client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="k", max_retries=0)
answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi?"}])
print(answer.choices[0].message.content)
"""


def test_light_distribution_alone_instruments_an_app_with_zero_code(
    install: Install, served: Collector, tmp_path: Path
) -> None:
    """An application's venv with `tracehouse` (and its own openai) only: no collector, no chDB,
    and TRACEHOUSE_INSTRUMENT=1 is all it takes for its calls to arrive."""
    from tracehouse_collector.demo.fake_openai import start_fake_openai

    venv = tmp_path / "app-venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _pip_install(venv, install.wheels, "tracehouse", "openai")
    python = str(venv / "bin" / "python")
    probe = _run(
        [
            python,
            "-c",
            "import importlib.util as u, tracehouse; "
            "print([m for m in ('chdb', 'tracehouse_collector', 'clickhouse_connect') if u.find_spec(m)])",
        ],
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "[]", probe.stdout
    (tmp_path / "app.py").write_text(_APP)
    service = unique("light-app")
    fake = start_fake_openai()
    try:
        done = _run(
            [python, "app.py"],
            cwd=tmp_path,
            TRACEHOUSE_INSTRUMENT="1",
            OTEL_SERVICE_NAME=service,
            OTEL_EXPORTER_OTLP_ENDPOINT=served.http_url,
            FAKE_OPENAI=f"http://127.0.0.1:{fake.server_address[1]}/v1",
        )
    finally:
        fake.shutdown()
    assert done.stdout.strip(), done.stderr
    query = (
        "SELECT GenAIRequestModel AS model, InputTokens AS input FROM otel_traces "
        f"WHERE ServiceName = '{service}' AND GenAIOperation = 'chat'"
    )
    wait_for(lambda: served.sql(query), timeout=30)
    (row,) = served.sql(query)
    assert row["model"] == "gpt-4o-mini" and int(row["input"]) > 0, row


@pytest.mark.parametrize("route", ["overview", "traces", "sessions", "runs", "metrics", "sql"])
def test_every_page_renders_in_a_browser_from_the_wheel_install(served: Collector, ui, route: str) -> None:
    """The pages as a user's browser runs them, from the installed files: each page's module loads
    and finishes rendering, with no console error."""
    ui.open(served.http_url, route)
    ui.wait_ready()
    assert ui.page.locator("#view").inner_text().strip()
    assert ui.page.locator(f'nav a[data-page="{route}"]').count() == 1
