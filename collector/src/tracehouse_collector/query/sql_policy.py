"""What a user's SQL may touch, decided on ClickHouse's own parse of it (`EXPLAIN AST`).

`readonly = 1` alone is not enough: it still lets a SELECT read any file through the scalar
`file()` function, call table functions such as `python()`, read other databases and system
tables with server internals, and run `KILL QUERY` or `USE`. The policy here, checked on the
syntax tree before anything runs:

- statements: SELECT (with WITH / UNION / INTERSECT / EXCEPT), DESCRIBE, EXPLAIN of those;
- tables: the `tracehouse` database, and a few system tables without secrets or paths;
- table functions: only generators (numbers, zeros, values, generate_series, ...);
- functions: none that read files, settings, server or host details, dictionaries or other
  tables by name;
- no SETTINGS, FORMAT or INTO OUTFILE clauses (the limits are the server's to set).

ClickHouse prints the tree one node per line, indented by depth, with `(children N)`. The
parser below re-checks every count, so a name or alias with a line break in it cannot pass
off a forged line as part of the tree: the query is refused instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tracehouse_collector.store import schema
from tracehouse_collector.store.errors import StoreError

STATEMENTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "DescribeQuery"})

# No secrets, paths or other users' queries in these.
SYSTEM_TABLES = frozenset(
    {
        "one",
        "numbers",
        "numbers_mt",
        "zeros",
        "zeros_mt",
        "columns",
        "functions",
        "table_functions",
        "aggregate_function_combinators",
        "data_type_families",
        "formats",
        "time_zones",
        "time_zone_transitions",
        "collations",
        "contributors",
    }
)

TABLE_FUNCTIONS = (
    "numbers",
    "numbers_mt",
    "zeros",
    "zeros_mt",
    "values",
    "generate_series",
    "generateSeries",
    "primes",
)
_TABLE_FUNCTIONS_LOWER = frozenset(name.lower() for name in TABLE_FUNCTIONS)

# Lower-cased. Files, settings, host and server details, access entities, other tables
# reached by a name in a string (joinGet, hasColumnInTable), introspection, model files.
DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "getsetting",
        "getsettingordefault",
        "getserversetting",
        "getmergetreesetting",
        "getmacro",
        "getserverport",
        "tcpport",
        "hostname",
        "fqdn",
        "fullhostname",
        "displayname",
        "serveruuid",
        "buildid",
        "getoskernelversion",
        "filesystemavailable",
        "filesystemcapacity",
        "filesystemunreserved",
        "filesystemfree",
        "currentprofiles",
        "enabledprofiles",
        "defaultprofiles",
        "currentroles",
        "enabledroles",
        "defaultroles",
        "getclienthttpheader",
        "zookeepersessionuptime",
        "hascolumnintable",
        "joinget",
        "joingetornull",
        "catboostevaluate",
        "addresstoline",
        "addresstolinewithinlines",
        "addresstosymbol",
        "demangle",
        "pggetuserbyid",
        "pg_get_userbyid",
        "__getscalar",
    }
)
DENIED_PREFIXES = ("dict",)  # dictGet*, dictHas, dictIsIn...: dictionaries have external sources

# Functions whose second argument may name a table: `x IN db.table`.
IN_FUNCTIONS = frozenset(
    {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}
)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LINE = re.compile(r"^( *)([A-Za-z_][A-Za-z0-9_]*)(?: (.*))?$")
_CHILDREN = re.compile(r" ?\(children (\d+)\)$")
_ALIAS = re.compile(r" \(alias .*\)$")


class SqlPolicyError(StoreError):
    """The statement is outside what read-only SQL may do."""

    def __init__(self, reason: str) -> None:
        # Code 164 is ClickHouse's READONLY error, which this extends.
        super().__init__(
            f"Code: 164. READONLY: tracehouse sql is read-only: {reason}. It runs SELECT, DESCRIBE and EXPLAIN "
            f"over the {schema.DATABASE} database (see 'SQL policy and limits' in docs/security.md)"
        )
        self.reason = reason


@dataclass
class Node:
    kind: str
    text: str  # what follows the kind on its line, without alias and children count
    children: list[Node] = field(default_factory=list)
    declared: int = 0


def parse_tree(lines: list[str]) -> Node:
    """The node tree of EXPLAIN AST output; SqlPolicyError when it does not add up."""
    root: Node | None = None
    stack: list[tuple[int, Node]] = []
    for line in lines:
        m = _LINE.match(line)
        if m is None:
            raise SqlPolicyError("names with line breaks or unusual characters are not allowed")
        depth, kind, rest = len(m.group(1)), m.group(2), m.group(3) or ""
        count = _CHILDREN.search(rest)
        if count:
            rest = rest[: count.start()]
        node = Node(kind=kind, text=_ALIAS.sub("", rest), declared=int(count.group(1)) if count else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if not stack:
            if root is not None or depth != 0:
                raise SqlPolicyError("names with line breaks or unusual characters are not allowed")
            root = node
        else:
            if depth != stack[-1][0] + 1:
                raise SqlPolicyError("names with line breaks or unusual characters are not allowed")
            stack[-1][1].children.append(node)
        stack.append((depth, node))
    if root is None:
        raise SqlPolicyError("empty statement")
    _check_counts(root)
    return root


def _check_counts(node: Node) -> None:
    if len(node.children) != node.declared:
        raise SqlPolicyError("names with line breaks or unusual characters are not allowed")
    for child in node.children:
        _check_counts(child)


def _check_table(name: str) -> None:
    parts = name.split(".")
    if len(parts) > 2 or not all(_NAME.match(p) for p in parts):
        raise SqlPolicyError(f"table name {name!r} is not allowed (plain names only)")
    if len(parts) == 1 or parts[0] == schema.DATABASE:
        return
    if parts[0] == "system" and parts[1] in SYSTEM_TABLES:
        return
    if parts[0] == "system":
        raise SqlPolicyError(
            f"system table {name} is not allowed (allowed: {', '.join('system.' + t for t in sorted(SYSTEM_TABLES))})"
        )
    raise SqlPolicyError(f"table {name} is outside the {schema.DATABASE} database")


def _function_name(node: Node) -> str:
    name = node.text.split(" ", 1)[0]
    if not _NAME.match(name):
        raise SqlPolicyError(f"function name {name!r} is not allowed")
    return name


def _check_node(node: Node, parent: Node | None) -> None:
    kind = node.kind
    if kind == "TableIdentifier":
        _check_table(node.text)
    elif kind == "Set":
        raise SqlPolicyError("SETTINGS clauses are not allowed; the server sets the limits")
    elif kind == "Function":
        name = _function_name(node)
        lower = name.lower()
        if parent is not None and parent.kind == "TableExpression":
            if lower not in _TABLE_FUNCTIONS_LOWER:
                raise SqlPolicyError(
                    f"table function {name}() is not allowed (allowed: {', '.join(TABLE_FUNCTIONS)})"
                )
        elif lower in DENIED_FUNCTIONS or lower.startswith(DENIED_PREFIXES):
            raise SqlPolicyError(
                f"function {name}() is not allowed (it reaches files, settings or the server)"
            )
        elif lower in IN_FUNCTIONS and node.children and len(node.children[0].children) == 2:
            rhs = node.children[0].children[1]
            if rhs.kind == "Identifier":
                _check_table(rhs.text)
    elif kind == "SelectWithUnionQuery" and len(node.children) > 1:
        # A nested SELECT carries no clauses of its own (INTO OUTFILE, FORMAT).
        raise SqlPolicyError("INTO OUTFILE and FORMAT clauses are not allowed")
    elif kind.endswith("Query") and kind not in STATEMENTS and kind != "TablesInSelectQuery":
        raise SqlPolicyError(f"{_statement_name(kind)} statements are not allowed")
    for child in node.children:
        _check_node(child, node)


def _statement_name(kind: str) -> str:
    """'KillQueryQuery' -> 'KILL QUERY', 'ShowTables' -> 'SHOW TABLES'."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z]*", re.sub(r"Query$", "", kind) or kind)
    return " ".join(words).upper() or kind


def check_tree(root: Node) -> None:
    """Raises SqlPolicyError unless the statement is within the policy.

    `root` is the tree of `EXPLAIN AST <statement>` as sent by the client library, which
    appends `FORMAT Native`: that one format clause is expected at the top.
    """
    if root.kind == "Explain":
        if not root.children or root.children[0].kind not in STATEMENTS:
            raise SqlPolicyError("EXPLAIN is allowed only for SELECT statements")
    elif root.kind.startswith("Show"):
        raise SqlPolicyError(
            f"{_statement_name(root.kind)} is not allowed; list tables with SELECT DISTINCT table "
            f"FROM system.columns WHERE database = '{schema.DATABASE}'"
        )
    elif root.kind not in STATEMENTS:
        raise SqlPolicyError(f"{_statement_name(root.kind)} statements are not allowed")
    if not root.children:
        raise SqlPolicyError(f"unexpected statement {root.kind}")
    body, *clauses = root.children
    for node in clauses:
        if node.kind == "Identifier" and node.text == "Native":
            continue  # the client's own FORMAT Native
        if node.kind == "Literal":
            raise SqlPolicyError("INTO OUTFILE is not allowed")
        if node.kind == "Identifier":
            raise SqlPolicyError("FORMAT clauses are not allowed; choose the output with --format")
        _check_node(node, root)  # SETTINGS, or anything else, gets its own message
        raise SqlPolicyError(f"unexpected clause {node.kind}")
    _check_node(body, root)
