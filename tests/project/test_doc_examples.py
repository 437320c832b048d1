"""The README's and docs' examples work as written: each one runs against a collector filled by
`tracehouse demo --seed 1` (the `demo_collector` the UI tests share) and must succeed and give
rows.

What runs, read from the markdown (tests/support/doc_markdown.py), nothing copied here:
- in ```sh/console blocks, the statements that call `tracehouse` or `curl`, and the variable
  assignments and `export`s among them. A block runs in one bash process, in order, so
  `TRACE=$(tracehouse traces list … )` feeds the lines after it; the working directory is a
  fresh one (files an example writes, `-o cost.parquet`, land there).
- ```python blocks that define every name they use (a snippet that uses the reader's own
  `agent` or `model` shows code to adapt, not a program).

The one substitution: the local addresses a reader's collector has, `http://127.0.0.1:4318`
(or `localhost:4318`) and `127.0.0.1:4317`, become the test collector's. `TRACEHOUSE_SERVER`
is set to it, as after the README's `export TRACEHOUSE_SERVER=…`, and `tracehouse` on the PATH
is this checkout's CLI.

Each command must exit 0 and give at least one row: a table's rows (`(N rows)`, or lines under
its `----` rule), a JSON array or `rows` that is not empty, a CSV line under the header, a file
written with `-o` that holds rows, a variable assigned a value, or any output at all for the
other forms (a span tree, a run's details). Commands that write data (`import`) go to a scratch
collector, so the demo's data the UI tests read stays as the demo left it; Python snippets that
send data through the SDK go to a fresh collector each, which must then hold what they sent;
those that read through `tracehouse.Client` read the demo's.
What cannot run here is in SKIP, with the reason, and every entry must still match an example.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import shlex
import shutil
import subprocess
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_markdown import DOCS, REPO, SHELL_LANGS, block_statements, fenced_blocks, rel, split_comments
from helpers import wait_for

SOURCE_DIRS = [REPO / "collector" / "src", REPO / "instrumentation" / "src"]

# Statements (regular expressions searched in them) that are not run here, and why.
SKIP = {
    r"\btracehouse serve\b": "starts a collector that runs until stopped: the test's collector is one",
    r"\btracehouse demo\b": "fills the test's collector (demo_collector runs `tracehouse demo --seed 1`); "
    "a second run would change the data the UI tests read",
    r"\btracehouse sync\b": "needs the spool the SDK leaves when the collector was unreachable (tests/test_runs_sdk.py)",
    r"//collector:4318": "a remote collector started with API keys (tests/test_auth.py covers keys)",
}

# Commands that store data (imports, annotations): run against a scratch collector, never the demo's.
WRITES = re.compile(r"\btracehouse (?:import|annotate)\b")

LOCAL_HTTP = re.compile(r"http://(?:127\.0\.0\.1|localhost):4318")
LOCAL_GRPC = re.compile(r"(?:127\.0\.0\.1|localhost):4317")
ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_]\w*)=")
RULE = re.compile(r"^-+(?: +-+)*$")
ROW_COUNT = re.compile(r"^\((\d+) rows?\)$", re.M)


@dataclass(frozen=True)
class Example:
    doc: Path
    number: int  # the block's position among the doc's fenced blocks
    lang: str
    body: str

    @property
    def name(self) -> str:
        return f"{rel(self.doc)}:block{self.number}"


def examples() -> list[Example]:
    return [
        Example(doc, n, lang, body)
        for doc in DOCS
        for n, (lang, body) in enumerate(fenced_blocks(doc.read_text(encoding="utf-8")))
    ]


def command_of(statement: str) -> str | None:
    """The program a statement runs (`tracehouse`, `curl`, `export`, …), or None for a plain
    assignment (`RUN=$(tracehouse runs list …)` too); leading `VAR=value` words are skipped."""
    code, _ = split_comments(statement)
    assigned = re.match(r"^\s*[A-Za-z_]\w*=(.*)$", code, re.S)
    if assigned:
        value = assigned.group(1).strip()
        if value.startswith("$(") and value.endswith(")") and "$(" not in value[2:]:
            return None
    try:
        words = shlex.split(code)
    except ValueError:
        return ""
    for word in words:
        if not re.match(r"^[A-Za-z_]\w*=", word):
            return word.rsplit("/", 1)[-1]
    return None


def skip_reason(statement: str) -> str | None:
    return next((why for pattern, why in SKIP.items() if re.search(pattern, statement)), None)


def runnable(statement: str) -> bool:
    """Whether the test runs this statement: a `tracehouse` or `curl` command, an export, or an
    assignment (what it assigns may come from one), and not in SKIP."""
    return command_of(statement) in {"tracehouse", "curl", "export", None} and skip_reason(statement) is None


def shell_examples() -> list[Example]:
    return [
        e
        for e in examples()
        if e.lang in SHELL_LANGS
        and any(command_of(s) in {"tracehouse", "curl"} and runnable(s) for s in statements(e))
    ]


def statements(example: Example) -> list[str]:
    return block_statements(example.lang, example.body)


def undefined_names(source: str) -> set[str]:
    """Global names the snippet uses but neither defines nor imports (builtins aside)."""
    top = symtable.symtable(source, "<snippet>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            if sym.is_referenced() and (table is top or sym.is_global()):
                used.add(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(top)
    return used - defined - set(dir(builtins))


def python_examples() -> list[Example]:
    return [e for e in examples() if e.lang == "python" and not undefined_names(e.body)]


def localize(text: str, collector) -> str:
    text = LOCAL_HTTP.sub(collector.http_url, text)
    return LOCAL_GRPC.sub(collector.grpc_endpoint, text)


def environment(workdir: Path, server_url: str) -> dict[str, str]:
    """The reader's shell: no TRACEHOUSE_* settings of the test run, this checkout's
    `tracehouse` first on the PATH, TRACEHOUSE_SERVER set to the collector."""
    bin_dir = workdir / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "tracehouse"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tracehouse_collector "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACEHOUSE_")}
    env["PYTHONPATH"] = os.pathsep.join([*(str(d) for d in SOURCE_DIRS), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["TRACEHOUSE_SERVER"] = server_url
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = server_url
    return env


def rows_of(statement: str, output: str, workdir: Path) -> int:
    """How many rows a statement's result has (see the module's docstring)."""
    written = re.search(r"(?:^|\s)(?:-o|--output)\s+(\S+)", split_comments(statement)[0])
    if written:
        return rows_in_file(workdir / written.group(1))
    text = output.strip()
    if not text:
        return 0
    try:
        value = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(value, dict) and "rows" in value:
            value = [dict(zip(value.get("columns") or [], row, strict=False)) for row in value["rows"]]
        if isinstance(value, list):
            return sum(1 for row in value if not (isinstance(row, dict) and row.get("count") in (0, "0")))
        return 1 if value else 0
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if RULE.match(line.strip())]
    if rules:
        return table_rows(lines, rules[0])
    counted = ROW_COUNT.findall(text)
    if counted:
        return int(counted[-1])
    if re.search(r"--format[ =]csv\b", statement):
        return len(lines) - 1
    return 1


def table_rows(lines: list[str], rule: int) -> int:
    """Rows of a printed table whose `----` rule is lines[rule]. An aggregate without `--by`
    prints one total row even when nothing matched: a row whose `count` is 0 is no row."""
    rows = [line for line in lines[rule + 1 :] if line.strip() and not ROW_COUNT.match(line.strip())]
    header = lines[rule - 1] if rule else ""
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]
    names = [header[a:b].strip() for a, b in spans]
    if "count" in names:
        a, b = spans[names.index("count")]
        rows = [row for row in rows if row[a:b].strip() not in ("0", "")]
    return len(rows)


def rows_in_file(path: Path) -> int:
    if not path.exists():
        return 0
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    return 1 if path.stat().st_size else 0


def bash_script(example: Example, demo, scratch, out: Path) -> tuple[str, list[str]]:
    """The block as one bash script that keeps each statement's output (or, for an assignment,
    the value assigned) in out/N.out, its stderr in N.err and its status in N.rc."""
    lines = ["set -o pipefail"]
    ran = []
    for statement in statements(example):
        if not runnable(statement):
            continue
        n = len(ran)
        ran.append(statement)
        target = scratch if WRITES.search(statement) else demo
        code = localize(statement, target)
        if target is not demo:
            code = (
                f"TRACEHOUSE_SERVER={target.http_url} {code}"
                if command_of(statement) == "tracehouse"
                else code
            )
        lines.append(f"{{ {code}\n}} >{out}/{n}.out 2>{out}/{n}.err; echo $? >{out}/{n}.rc")
        assigned = ASSIGNMENT.match(statement)
        if assigned and command_of(statement) in {None, "export"}:
            lines.append(f'printf %s "${{{assigned.group(1)}}}" >{out}/{n}.out')
    return "\n".join(lines) + "\n", ran


@pytest.fixture(scope="module")
def scratch(start_collector):
    """Where examples that write data write it."""
    return start_collector(name="doc-examples-scratch")


@pytest.mark.parametrize("example", shell_examples(), ids=lambda e: e.name)
def test_shell_example(example: Example, demo_collector, scratch, tmp_path: Path) -> None:
    programs = {command_of(s) for s in statements(example) if runnable(s)} | {"bash", "sed", "cut", "tail"}
    missing = sorted(p for p in programs - {None, "export", "tracehouse"} if not shutil.which(p))
    if missing and not os.environ.get("CI"):  # CI installs them (make system-deps): there it fails
        pytest.skip(f"not installed: {missing}")
    workdir, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    env = environment(workdir, demo_collector.http_url)
    script, ran = bash_script(example, demo_collector, scratch, out)
    subprocess.run(["bash", "-c", script], cwd=workdir, env=env, timeout=600, check=False)
    problems = []
    for n, statement in enumerate(ran):
        rc_file = out / f"{n}.rc"
        rc = int(rc_file.read_text()) if rc_file.exists() else None
        stdout = (out / f"{n}.out").read_text(errors="replace") if (out / f"{n}.out").exists() else ""
        stderr = (out / f"{n}.err").read_text(errors="replace") if (out / f"{n}.err").exists() else ""
        if rc != 0:
            problems.append(
                f"$ {statement}\n  exit {rc}\n  stderr: {stderr[-1500:]}\n  stdout: {stdout[-500:]}"
            )
        elif command_of(statement) is None and not stdout.strip():
            problems.append(f"$ {statement}\n  assigned nothing\n  stderr: {stderr[-500:]}")
        elif command_of(statement) not in {"export", None} and rows_of(statement, stdout, workdir) == 0:
            problems.append(
                f"$ {statement}\n  gave no rows\n  stdout: {stdout[-500:]!r}\n  stderr: {stderr[-500:]}"
            )
    if problems:  # pytest.fail: the whole message, not an assertion's shortened repr
        pytest.fail(f"{example.name}:\n" + "\n".join(problems), pytrace=False)


@pytest.mark.parametrize("example", python_examples(), ids=lambda e: e.name)
def test_python_example(example: Example, demo_collector, start_collector, tmp_path: Path) -> None:
    # The SDK sends; its Client only reads (the demo's data, like the shell examples).
    reads = "tracehouse.Client(" in example.body
    sends = not reads and bool(re.search(r"^import tracehouse$|^from tracehouse\b", example.body, re.M))
    target = start_collector(name="doc-snippet") if sends else demo_collector
    tmp_path.mkdir(exist_ok=True)
    snippet = tmp_path / "snippet.py"
    snippet.write_text(localize(example.body, target))
    env = environment(tmp_path, target.http_url)
    result = subprocess.run(
        [sys.executable, str(snippet)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{example.name} failed:\n{example.body}\n{result.stderr[-3000:]}"
    if sends:
        stored = "SELECT (SELECT count() FROM otel_traces) + (SELECT count() FROM otel_scores) + (SELECT count() FROM runs)"
        assert wait_for(lambda: target.scalar(stored) > 0, timeout=30), f"{example.name} stored nothing"
        # Each score the snippet records arrives (its fresh collector holds nothing else).
        scores = len(re.findall(r"\btracehouse\.score\(", example.body))
        wait_for(lambda: target.scalar("SELECT count() FROM otel_scores") >= scores, timeout=30)
        stored_scores = target.scalar("SELECT count() FROM otel_scores")
        assert stored_scores == scores, f"{example.name}: {scores} scores recorded, {stored_scores} stored"


def test_the_examples_are_found_and_the_skip_list_is_current() -> None:
    """Not vacuous: the README's queries and the docs' Python clients are among what runs; and
    every SKIP entry still names an example (a fixed one leaves the list)."""
    ran = {e.name for e in shell_examples()} | {e.name for e in python_examples()}
    assert any(n.startswith("README.md:") for n in ran), ran
    assert any(n.startswith("docs/querying.md:") for n in ran), ran
    assert len(python_examples()) >= 2, [e.name for e in python_examples()]
    all_statements = [s for e in examples() if e.lang in SHELL_LANGS for s in statements(e)]
    stale = [p for p in SKIP if not any(re.search(p, s) for s in all_statements)]
    assert not stale, f"SKIP entries that match no example any more: {stale}"
