"""The README and docs/ say only what is true of this checkout.

- every relative link resolves to a file (and heading anchor, if it names one);
- every `tracehouse <command> [<subcommand>] --flag` in a shell example (a ```sh/console block,
  or an inline `tracehouse …` span) names a command and flags the CLI has, asked through
  `python -m tracehouse_collector … --help`, never by importing the CLI modules;
- every TRACEHOUSE_* variable the docs name is read by the code, and every one the code reads is
  documented;
- every `make` target the docs name is in the Makefile.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "Makefile").exists())
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SOURCE_DIRS = [REPO / "collector" / "src", REPO / "instrumentation" / "src"]
# Variables that tune the benchmarks and the test suite, not the product: read in bench/ or tests/.
TOOLING_VARS = {"TRACEHOUSE_BENCH_CLICKHOUSE", "TRACEHOUSE_CHROMIUM", "TRACEHOUSE_FUZZ_EXAMPLES"}
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}

FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
VAR = re.compile(r"\bTRACEHOUSE_[A-Z0-9_]*[A-Z0-9]\b")
VAR_LITERAL = re.compile(r"""["'](TRACEHOUSE_[A-Z0-9_]*[A-Z0-9])["']""")
FLAG = re.compile(r"^(--[A-Za-z0-9][\w-]*|-[A-Za-z])$")


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(2).lower(), m.group(3)) for m in FENCE.finditer(text)]


def prose(text: str) -> str:
    """The text outside fenced blocks."""
    return FENCE.sub("", text)


def inline_spans(text: str) -> list[str]:
    return [m.group(2).strip() for m in INLINE_CODE.finditer(prose(text))]


# -- links -----------------------------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed
    (hyphens and underscores kept), each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(1))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return frozenset(out)


def links(text: str) -> list[str]:
    outside_code = INLINE_CODE.sub("code", prose(text))
    return [m.group(1) for m in LINK.finditer(outside_code)]


@pytest.mark.parametrize("doc", DOCS, ids=rel)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in links(doc.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, f"{rel(doc)}: broken links:\n  " + "\n  ".join(broken)


def test_docs_have_links_and_the_index_lists_every_doc() -> None:
    """The link check above is not vacuous, and nothing in docs/ is unreachable from the index."""
    index = REPO / "docs" / "README.md"
    listed = {t.partition("#")[0] for t in links(index.read_text(encoding="utf-8"))}
    missing = [p.name for p in DOCS[1:] if p != index and p.name not in listed]
    assert not missing, f"docs/README.md does not link {missing}"
    readme_links = {t.partition("#")[0] for t in links((REPO / "README.md").read_text(encoding="utf-8"))}
    assert "docs/README.md" in readme_links


# -- CLI commands and flags --------------------------------------------------------------------------


def shell_statements(doc_text: str) -> list[str]:
    """Shell command lines of the doc: lines of shell blocks (quoted strings and `\\`
    continuations joined; in a console block, the `$ ` lines), and inline spans that start
    with the `tracehouse` command."""
    out: list[str] = []
    for lang, body in fenced_blocks(doc_text):
        if lang not in SHELL_LANGS:
            continue
        pending = ""
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            pending = f"{pending}\n{line}" if pending else line
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the statement goes on
                continue
            out.append(pending)
            pending = ""
        if pending:
            out.append(pending)
    out += [s for s in inline_spans(doc_text) if re.match(r"^(\S*/)?tracehouse\s", s)]
    return out


def split_comments(statement: str) -> tuple[str, str]:
    """(the statement without its `# …` comments, the comments' text), quotes respected."""
    code, comments, quote, i = [], [], "", 0
    while i < len(statement):
        c = statement[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or statement[i - 1].isspace()):
            end = statement.find("\n", i)
            end = len(statement) if end < 0 else end
            comments.append(statement[i + 1 : end])
            i = end
            continue
        code.append(c)
        i += 1
    return "".join(code), "\n".join(comments)


def tracehouse_invocations(statement: str) -> list[tuple[list[str], list[str]]]:
    """(words after `tracehouse` up to its first flag, flags) of each call of the command.
    Flags a call's trailing comment names (`# --format json, --tolerance 1e-6`) count too."""
    code, comment = split_comments(statement)
    lex = shlex.shlex(code, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""
    calls: list[tuple[list[str], list[str]]] = []
    command_position = True
    current: tuple[list[str], list[str]] | None = None
    for tok in lex:
        if tok and set(tok) <= set("|&;<>()"):  # a shell operator: a new command may follow
            command_position, current = True, None
            continue
        if command_position:
            if re.match(r"^[A-Za-z_]\w*=", tok):  # VAR=value before the command
                continue
            command_position = False
            if tok.rsplit("/", 1)[-1] == "tracehouse":  # tracehouse, .venv/bin/tracehouse
                current = ([], [])
                calls.append(current)
            continue
        if current is None:
            continue
        words, flags = current
        tok = tok.strip("[]").split("=", 1)[0]
        if FLAG.match(tok):
            flags.append(tok)
        elif not flags and re.match(r"^[a-z][a-z-]*$", tok):
            words.append(tok)
    if calls:
        calls[-1][1].extend(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", comment))
    return calls


def serve_flags_in_tables(doc_text: str) -> list[str]:
    """Flags in the first column of tables headed `| flag | variable |` (the settings of
    `tracehouse serve`)."""
    flags, in_table = [], False
    for line in prose(doc_text).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_table = False
        elif cells[:2] == ["flag", "variable"]:
            in_table = True
        elif in_table:
            flags += re.findall(r"`(--[a-z][\w-]*)", cells[0])
    return flags


@cache
def cli_help(path: tuple[str, ...]) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*(str(d) for d in SOURCE_DIRS), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-m", "tracehouse_collector", *path, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, f"tracehouse {' '.join(path)} --help failed:\n{result.stderr}"
    return result.stdout


def subcommands(help_text: str) -> list[str]:
    """The choices of a command's first positional argument (argparse prints `{a,b,c}`)."""
    section = help_text.split("positional arguments:", 1)
    if len(section) < 2:
        return []
    m = re.search(r"^\s+\{([\w,-]+)\}", section[1], re.M)
    return m.group(1).split(",") if m else []


def help_flags(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z0-9][\w-]*)", help_text))


def documented_invocations() -> dict[tuple[str, ...], dict[str, set[str]]]:
    """Command path -> {flag: docs naming it}; a path of () is `tracehouse` alone."""
    found: dict[tuple[str, ...], dict[str, set[str]]] = {}
    for doc in DOCS:
        for statement in shell_statements(doc.read_text(encoding="utf-8")):
            for words, flags in tracehouse_invocations(statement):
                path = command_path(words)
                entry = found.setdefault(path, {})
                for flag in flags or ["--help"]:
                    entry.setdefault(flag, set()).add(rel(doc))
        for flag in serve_flags_in_tables(doc.read_text(encoding="utf-8")):
            found.setdefault(("serve",), {}).setdefault(flag, set()).add(rel(doc))
    return found


def command_path(words: list[str]) -> tuple[str, ...]:
    """The command (and sub-command) these words name; an unknown one is returned as it is,
    for --help to refuse."""
    path: list[str] = []
    for word in words:
        choices = subcommands(cli_help(tuple(path)))
        if not choices:
            break
        path.append(word)
        if word not in choices:
            break
    return tuple(path)


def test_docs_name_cli_commands() -> None:
    """The CLI check below is not vacuous: the docs show the main commands."""
    paths = documented_invocations()
    for expected in [("serve",), ("sql",), ("query", "cost"), ("traces", "list"), ("runs", "list")]:
        assert expected in paths, f"no shell example of `tracehouse {' '.join(expected)}`"


def test_documented_cli_commands_and_flags_exist() -> None:
    paths = documented_invocations()
    with ThreadPoolExecutor(max_workers=4) as pool:
        helps = dict(zip(paths, pool.map(cli_help_or_error, paths), strict=True))
    problems = []
    for path, flags in sorted(paths.items()):
        command = " ".join(["tracehouse", *path])
        text = helps[path]
        if text is None:
            problems.append(f"`{command}` is not a command (named in {sorted(set().union(*flags.values()))})")
            continue
        known = help_flags(text)
        for flag, where in sorted(flags.items()):
            if flag not in known:
                problems.append(f"`{command}` has no {flag} (named in {', '.join(sorted(where))})")
    assert not problems, "\n".join(problems)


def cli_help_or_error(path: tuple[str, ...]) -> str | None:
    try:
        return cli_help(path)
    except AssertionError:
        return None


# -- environment variables ---------------------------------------------------------------------------


def python_files(*dirs: Path) -> list[Path]:
    this = Path(__file__).resolve()
    return [p for d in dirs for p in d.rglob("*.py") if p.resolve() != this]


def variables_read(*dirs: Path) -> set[str]:
    """TRACEHOUSE_* names that appear as whole string literals (os.environ keys) in the code."""
    names: set[str] = set()
    for path in python_files(*dirs):
        names |= set(VAR_LITERAL.findall(path.read_text(encoding="utf-8")))
    return names


def documented_variables() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        for name in VAR.findall(doc.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(rel(doc))
    return found


def test_every_documented_variable_is_read() -> None:
    product = variables_read(*SOURCE_DIRS)
    tooling = variables_read(REPO / "bench", REPO / "tests")
    problems = []
    for name, where in sorted(documented_variables().items()):
        if name in TOOLING_VARS:
            if name not in tooling:
                problems.append(f"{name} ({', '.join(sorted(where))}): not read in bench/ or tests/")
        elif name not in product:
            problems.append(
                f"{name} ({', '.join(sorted(where))}): not read in collector/src or instrumentation/src"
            )
    assert not problems, "documented but never read:\n" + "\n".join(problems)


def test_every_variable_the_code_reads_is_documented() -> None:
    read = variables_read(*SOURCE_DIRS)
    assert len(read) > 30, "the variable scan found too little to be trusted"
    missing = sorted(read - set(documented_variables()))
    assert not missing, f"read by the code but not named in README.md or docs/: {missing}"


# -- make targets ----------------------------------------------------------------------------------


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, re.M)}


def documented_make_targets() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        snippets = [body for lang, body in fenced_blocks(text) if lang in SHELL_LANGS] + inline_spans(text)
        for snippet in snippets:
            for m in re.finditer(r"(?:^|[\s;&|(])make((?:\s+[A-Za-z][\w.-]*(?![\w=.-]))+)", snippet, re.M):
                for target in m.group(1).split():
                    found.setdefault(target, set()).add(rel(doc))
    return found


def test_documented_make_targets_exist() -> None:
    documented = documented_make_targets()
    assert {"run", "test"} <= set(documented), "the two commands are not shown"
    targets = makefile_targets()
    missing = {t: sorted(w) for t, w in documented.items() if t not in targets}
    assert not missing, f"`make` targets named in the docs but not in the Makefile: {missing}"
