"""The `tracehouse` command line: the root parser, built from the command groups, and dispatch.

Only the group of the command given is imported and built: a command that calls a running
server starts in a few tens of milliseconds, with nothing of the store, the servers or the
query engines loaded (tests/project/test_cli_startup.py keeps it so). `tracehouse --help`, or a
command line that names no known command, builds them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from tracehouse_collector.cli.common import fail

# Each command group's module, with the top-level commands its add_parsers adds, in the order
# `tracehouse --help` lists them.
GROUPS: dict[str, tuple[str, ...]] = {
    "serve": ("serve",),
    "sql": ("sql",),
    "schema": ("schema",),
    "query": ("query",),
    "traces": ("traces", "sessions"),
    "runs": ("runs", "import", "sync"),
    "evals": ("annotate",),
    "models": ("models", "reproduce"),
    "demo": ("demo",),
}
COMMAND_GROUP = {command: group for group, commands in GROUPS.items() for command in commands}


class _Version(argparse.Action):
    """--version, which reads the installed version only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from tracehouse_collector import __version__

        print(f"tracehouse {__version__}")  # on stdout, as argparse's own version action
        parser.exit()


def group_module(group: str) -> ModuleType:
    return importlib.import_module(f"tracehouse_collector.cli.{group}")


def requested_command(argv: list[str]) -> str | None:
    """The command an argument list names: its first word that is not an option (the root
    parser's own options take no value), if it is a command."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMAND_GROUP else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The root parser, with every group, or with only the group of `command` when given."""
    parser = argparse.ArgumentParser(prog="tracehouse", description="Tracehouse collector and query tools")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in [COMMAND_GROUP[command]] if command else GROUPS:
        group_module(group).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(requested_command(argv)).parse_args(argv)
    settle = getattr(args, "settle", None)  # read commands: --server or the store (common.py)
    error = settle(args) if settle else None
    if error:
        return fail(error, 2)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
