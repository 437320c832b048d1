"""Reading the README and docs/*.md as a test sees them: fenced blocks, prose, inline code spans
and the shell statements of the examples. Shared by tests/project/test_docs.py (links, flags, variables)
and tests/project/test_doc_examples.py (running the examples)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = next(p for p in Path(__file__).resolve().parents if (p / "Makefile").exists())
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}

FENCE = re.compile(r"^[ \t]*(```+|~~~+)[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.S)


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


def block_statements(lang: str, body: str) -> list[str]:
    """The command lines of one shell block, in order: quoted strings and `\\` continuations
    joined; in a console block, only the `$ ` lines."""
    out: list[str] = []
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
    return out


def shell_statements(doc_text: str) -> list[str]:
    """Shell command lines of the doc: those of its shell blocks, and inline spans that start
    with the `tracehouse` command."""
    out: list[str] = []
    for lang, body in fenced_blocks(doc_text):
        if lang in SHELL_LANGS:
            out += block_statements(lang, body)
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
