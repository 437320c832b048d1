"""The schema's DDL as one server or a ClickHouse cluster needs it, with optional retention.

The migrations in `schema.py` are written for one node. This module rewrites each of their
statements, so a table, rollup or materialized view added by a later migration is covered
without touching this file:

- single node: the statements as they are; with a retention, a `TTL` clause on each table's
  time column (whole parts are dropped, `ttl_only_drop_parts = 1`).
- cluster (`ON CLUSTER name`): each MergeTree-family table becomes a local table
  `<name>_local` with the Replicated engine of the same family
  (`ReplacingMergeTree(v)` -> `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/...',
  '{replica}', v)`), and a `Distributed` table takes the public name, so the collector and every
  query keep using `otel_traces` and friends. Rows are sharded by trace id (run id for tables
  without one), so a trace lives on one shard. Materialized views are created on the local
  tables, so each shard fills its own rollups from its own rows.

What the cluster must provide: the `{shard}` and `{replica}` macros on every node (the
`{database}` and `{table}` parts of the replication path are filled by ClickHouse itself),
ClickHouse Keeper or ZooKeeper, and the cluster named in `remote_servers`.

Deduplication: a plain MergeTree remembers recent insert tokens through
`non_replicated_deduplication_window`; a replicated one through
`replicated_deduplication_window` (the hashes live in Keeper, so a retry reaching another
replica is still recognised). Cluster mode swaps the first for the second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracehouse_collector.store import schema

REPLICATION_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
# Tables every node needs the same copy of (not sharded): one replication group for all nodes.
NODE_WIDE_PATH = "/clickhouse/tables/all/{database}/{table}"
# Replica names are often unique only within a shard; within one all-node group they must not clash.
NODE_WIDE_REPLICA = "{shard}-{replica}"
NODE_WIDE_TABLES = frozenset({"schema_migrations"})
LOCAL_SUFFIX = "_local"
# Sharding keys, first match wins: keep a trace, or else a run, on one shard.
SHARD_COLUMNS = ("TraceId", "RunId")

_UNITS = {"h": "HOUR", "d": "DAY", "w": "WEEK"}
_NAME = r"(?:`[^`]+`|\w+)(?:\.(?:`[^`]+`|\w+))?"
_CREATE_TABLE = re.compile(rf"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.I)
_CREATE_MV = re.compile(rf"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.I)
_CREATE_VIEW = re.compile(rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.I)
_CREATE_DATABASE = re.compile(rf"^\s*CREATE\s+DATABASE\s+(IF\s+NOT\s+EXISTS\s+)?({_NAME})", re.I)
_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+({_NAME})", re.I)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w+)", re.I)
_PARTITION = re.compile(r"\bPARTITION\s+BY\s+(.+?)\s*(?:\n|$|\bPRIMARY\s+KEY\b|\bORDER\s+BY\b)", re.I)
_TIME_PARTITION = re.compile(
    r"^\(?\s*(?:toDate|toStartOf\w+|toYYYYMM(?:DD)?|toMonday)\(\s*`?(\w+)`?\s*\)\s*\)?$"
)
_SETTINGS = re.compile(r"\bSETTINGS\b", re.I)
_TTL = re.compile(r"\bTTL\b", re.I)


class DDLError(ValueError):
    """A statement or option the renderer cannot turn into valid DDL; the message says which."""


@dataclass(frozen=True)
class Retention:
    """How long rows are kept, e.g. `Retention.parse("30d")`; amount 0 means keep forever."""

    amount: int
    unit: str  # a ClickHouse interval unit: HOUR, DAY, WEEK

    @classmethod
    def parse(cls, text: str) -> Retention:
        raw = text.strip().lower()
        if raw in ("0", "off", "none", "forever"):
            return cls(0, "DAY")
        match = re.fullmatch(r"(\d+)\s*([hdw])", raw)
        if not match or int(match.group(1)) == 0:
            raise DDLError(
                f"retention {text!r}: expected a number and a unit h, d or w (e.g. 30d, 12h, 4w), or off"
            )
        return cls(int(match.group(1)), _UNITS[match.group(2)])

    @property
    def forever(self) -> bool:
        return self.amount == 0

    def expression(self, column: str) -> str:
        # A DateTime64 column cannot be a TTL directly; seconds are precise enough to expire.
        return f"toDateTime({column}) + INTERVAL {self.amount} {self.unit}"


def check_cluster_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name or ""):
        raise DDLError(f"cluster name {name!r}: use letters, digits, '_', '-' or '.'")
    return name


# -- helpers over statement text ----------------------------------------------------------------


def _split_name(qualified: str) -> tuple[str, str]:
    parts = [p.strip("`") for p in qualified.split(".")]
    return (parts[0], parts[1]) if len(parts) == 2 else (schema.DATABASE, parts[0])


def _balanced(sql: str, start: int) -> int:
    """Index just past the parenthesis group opening at `start` (string literals respected)."""
    depth, i, quote = 0, start, ""
    while i < len(sql):
        ch = sql[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise DDLError(f"unbalanced parentheses in: {sql[:80]}...")


def _engine(sql: str) -> tuple[int, int, str, str] | None:
    """(start, end, engine name, argument text) of the ENGINE clause, or None."""
    match = _ENGINE.search(sql)
    if not match:
        return None
    end, args = match.end(), ""
    rest = sql[end:]
    stripped = rest.lstrip()
    if stripped.startswith("("):
        open_at = end + (len(rest) - len(stripped))
        end = _balanced(sql, open_at)
        args = sql[open_at + 1 : end - 1].strip()
    return match.start(), end, match.group(1), args


def _columns_block(sql: str, after: int) -> str:
    open_at = sql.find("(", after)
    engine = _ENGINE.search(sql)
    if open_at < 0 or (engine and open_at > engine.start()):
        return ""
    return sql[open_at : _balanced(sql, open_at)]


def _column_names(block: str) -> list[str]:
    """Top-level column names of a `( ... )` column list (not the fields inside Nested types)."""
    names, depth, start, quote = [], 0, 1, ""
    for i, ch in enumerate(block):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if (ch == "," and depth == 1 and not quote) or (depth == 0 and i > 0):
            item = block[start:i].strip()
            match = re.match(r"`?(\w+)`?\s+\w", item)
            if match and match.group(1).upper() not in ("INDEX", "PROJECTION", "CONSTRAINT"):
                names.append(match.group(1))
            start = i + 1
            if depth == 0:
                break
    return names


def _top_level_settings(sql: str) -> re.Match[str] | None:
    """The table's own SETTINGS clause (the last one, after the engine)."""
    engine = _ENGINE.search(sql)
    found = [m for m in _SETTINGS.finditer(sql) if engine is None or m.start() > engine.end()]
    return found[-1] if found else None


def _set_setting(sql: str, name: str, value: object) -> str:
    match = _top_level_settings(sql)
    if match is None:
        return f"{sql.rstrip()}\nSETTINGS {name} = {value}"
    head, tail = sql[: match.end()], sql[match.end() :]
    existing = re.compile(rf"\b{name}\s*=\s*[^,\n]+")
    if existing.search(tail):
        return head + existing.sub(f"{name} = {value}", tail, count=1)
    return f"{head}{tail.rstrip()}, {name} = {value}"


def _drop_setting(sql: str, name: str) -> str:
    match = _top_level_settings(sql)
    if match is None:
        return sql
    head, tail = sql[: match.end()], sql[match.end() :]
    tail = re.sub(rf"\s*\b{name}\s*=\s*[^,\n]+,?", "", tail, count=1).rstrip().rstrip(",")
    return head + tail if tail.strip() else head[: match.start()].rstrip()


def _setting_value(sql: str, name: str) -> str | None:
    match = _top_level_settings(sql)
    if match is None:
        return None
    found = re.search(rf"\b{name}\s*=\s*([^,\n]+)", sql[match.end() :])
    return found.group(1).strip() if found else None


# -- retention ----------------------------------------------------------------------------------


def ttl_column(table: str, create_sql: str) -> str | None:
    """The column a table's retention applies to, or None when its rows are kept forever.

    A table declared in `schema.TABLES` may name it (`ttl_column`) or opt out (`retention=False`,
    e.g. experiment runs that are kept for good), and a table with a TTL of its own keeps it;
    otherwise it is the column of a time-based PARTITION BY (`toDate(Timestamp)` ->
    `Timestamp`), so whole partitions expire together.
    """
    engine = _ENGINE.search(create_sql)
    if engine and _TTL.search(create_sql[engine.end() :]):
        return None  # the table sets its own TTL; a global retention does not override it
    declared = schema.TABLES.get(table)
    if declared is not None:
        if not getattr(declared, "retention", True):
            return None
        if getattr(declared, "ttl_column", ""):
            return str(declared.ttl_column)
    match = _PARTITION.search(create_sql)
    if not match:
        return None
    column = _TIME_PARTITION.match(match.group(1).strip())
    return column.group(1) if column else None


def _with_ttl(sql: str, expression: str) -> str:
    match = _top_level_settings(sql)
    if match is None:
        sql = f"{sql.rstrip()}\nTTL {expression}"
    else:
        sql = f"{sql[: match.start()].rstrip()}\nTTL {expression}\n{sql[match.start() :]}"
    return _set_setting(sql, "ttl_only_drop_parts", 1)


# -- rendering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    cluster: str | None
    retention: Retention | None
    sharded: frozenset[str]  # tables (by plain name) that have a local + Distributed pair

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER '{self.cluster}'" if self.cluster else ""


def _local(database: str, table: str) -> str:
    return f"{database}.{table}{LOCAL_SUFFIX}"


def _is_merge_tree(sql: str) -> bool:
    engine = _engine(sql)
    return engine is not None and engine[2].endswith("MergeTree") and not engine[2].startswith("Replicated")


def sharded_tables(statements: list[str]) -> frozenset[str]:
    """Tables that become a local table plus a Distributed one on a cluster."""
    names = set()
    for sql in statements:
        match = _CREATE_TABLE.match(sql)
        if match and _is_merge_tree(sql):
            table = _split_name(match.group(2))[1]
            if table not in NODE_WIDE_TABLES:
                names.add(table)
    return frozenset(names)


def _replicated_engine(sql: str, path: str, replica: str = "{replica}") -> str:
    engine = _engine(sql)
    assert engine is not None
    start, end, name, args = engine
    new_args = ", ".join(a for a in (f"'{path}'", f"'{replica}'", args) if a)
    return f"{sql[:start]}ENGINE = Replicated{name}({new_args}){sql[end:]}"


def _replicated_settings(sql: str) -> str:
    window = _setting_value(sql, "non_replicated_deduplication_window") or str(schema.DEDUP_WINDOW)
    sql = _drop_setting(sql, "non_replicated_deduplication_window")
    return _set_setting(sql, "replicated_deduplication_window", window)


def _create_table(sql: str, match: re.Match[str], ctx: _Context) -> list[str]:
    database, table = _split_name(match.group(2))
    if ctx.retention and not ctx.retention.forever and _is_merge_tree(sql):
        column = ttl_column(table, sql)
        if column:
            sql = _with_ttl(sql, ctx.retention.expression(column))
    if not ctx.cluster:
        return [sql]
    head = f"CREATE TABLE {match.group(1) or ''}"
    if table in NODE_WIDE_TABLES and _is_merge_tree(sql):
        sql = _replicated_settings(_replicated_engine(sql, NODE_WIDE_PATH, NODE_WIDE_REPLICA))
        return [f"{head}{database}.{table}{ctx.on_cluster}{sql[match.end() :]}"]
    if table not in ctx.sharded:  # not MergeTree (Memory, Null, ...): the same table on each node
        return [f"{head}{database}.{table}{ctx.on_cluster}{sql[match.end() :]}"]
    local = _replicated_settings(_replicated_engine(sql, REPLICATION_PATH))
    local = f"{head}{_local(database, table)}{ctx.on_cluster}{local[match.end() :]}"
    names = _column_names(_columns_block(sql, match.end()))
    # Rows without the id (logs outside any trace) are spread, not all sent to one shard.
    key = next((f"if(empty({c}), rand(), cityHash64({c}))" for c in SHARD_COLUMNS if c in names), "rand()")
    distributed = (
        f"{head}{database}.{table}{ctx.on_cluster}\nAS {_local(database, table)}\n"
        f"ENGINE = Distributed('{ctx.cluster}', '{database}', '{table}{LOCAL_SUFFIX}', {key})"
    )
    return [local, distributed]


# Words that may follow a table in FROM/JOIN and are not an alias of it.
_NOT_ALIAS = frozenset(
    (  # noqa: SIM905 - a word list
        "WHERE PREWHERE GROUP ORDER LIMIT HAVING ARRAY LEFT RIGHT INNER OUTER FULL CROSS JOIN ON USING "
        "FINAL SAMPLE UNION SETTINGS FORMAT WITH WINDOW QUALIFY ANY ALL GLOBAL ASOF SEMI ANTI PASTE"
    ).split()
)


def _to_local_references(sql: str, ctx: _Context) -> str:
    """Point a view's target and sources at the local tables of the sharded ones.

    A source read as `FROM db.t` becomes `FROM db.t_local AS t`, so `t.Column` in the select
    keeps resolving.
    """
    ref = re.compile(
        r"\b(?P<kw>FROM|JOIN|TO)\s+(?:`?(?P<db>\w+)`?\s*\.\s*)?`?(?P<t>\w+)`?(?P<after>\s*(?P<next>\w+)?)",
        re.I,
    )

    def swap(m: re.Match[str]) -> str:
        database, table = m.group("db") or schema.DATABASE, m.group("t")
        if database != schema.DATABASE or table not in ctx.sharded:
            return m.group(0)
        following = (m.group("next") or "").upper()
        needs_alias = m.group("kw").upper() != "TO" and (not following or following in _NOT_ALIAS)
        alias = f" AS {table}" if needs_alias else ""
        return f"{m.group('kw')} {_local(database, table)}{alias}{m.group('after')}"

    return ref.sub(swap, sql)


def _create_materialized_view(sql: str, match: re.Match[str], ctx: _Context) -> list[str]:
    if not ctx.cluster:
        return [sql]
    name = match.group(2)
    body = _to_local_references(sql[match.end() :], ctx)
    if _is_merge_tree(body):  # a view with an inner table (no TO): replicate that table too
        body = _replicated_settings(_replicated_engine(body, REPLICATION_PATH))
    return [f"CREATE MATERIALIZED VIEW {match.group(1) or ''}{name}{ctx.on_cluster}{body}"]


def _alter_table(sql: str, match: re.Match[str], ctx: _Context) -> list[str]:
    if not ctx.cluster:
        return [sql]
    database, table = _split_name(match.group(1))
    rest = sql[match.end() :]
    if re.match(r"\s*MODIFY\s+QUERY\b", rest, re.I):
        # A materialized view's new select reads the local tables, as its CREATE did.
        return [f"ALTER TABLE {database}.{table}{ctx.on_cluster}{_to_local_references(rest, ctx)}"]
    if table not in ctx.sharded:
        return [f"ALTER TABLE {database}.{table}{ctx.on_cluster}{rest}"]
    out = [f"ALTER TABLE {_local(database, table)}{ctx.on_cluster}{rest}"]
    # The Distributed table mirrors the columns; indexes, TTL and settings live on the local one.
    if re.search(r"\bCOLUMN\b", rest, re.I):
        out.append(f"ALTER TABLE {database}.{table}{ctx.on_cluster}{rest}")
    return out


def _render_one(sql: str, ctx: _Context) -> list[str]:
    sql = sql.strip().rstrip(";").strip()
    if match := _CREATE_MV.match(sql):
        return _create_materialized_view(sql, match, ctx)
    if match := _CREATE_TABLE.match(sql):
        return _create_table(sql, match, ctx)
    if not ctx.cluster:
        return [sql]
    for pattern in (_CREATE_DATABASE, _CREATE_VIEW):
        if match := pattern.match(sql):
            return [f"{sql[: match.end()]}{ctx.on_cluster}{sql[match.end() :]}"]
    if match := _ALTER_TABLE.match(sql):
        return _alter_table(sql, match, ctx)
    if re.match(r"\s*INSERT\s+INTO\b", sql, re.I):
        # A backfill: run once, through the Distributed tables, it reads every shard and
        # writes each row to the shard its key picks.
        return [sql]
    raise DDLError(f"cannot render this statement for a cluster (add a rule to store/ddl.py): {sql[:120]}")


def render(
    statements: list[str],
    cluster: str | None = None,
    retention: Retention | None = None,
    context: list[str] | None = None,
) -> list[str]:
    """Rewrite single-node statements for `cluster` and/or `retention`.

    `context` is the whole schema (defaults to `statements`): it tells which tables are sharded,
    so a later migration's view or ALTER on an earlier table is rewritten to match.
    """
    if cluster is not None:
        check_cluster_name(cluster)
    ctx = _Context(cluster, retention, sharded_tables(context if context is not None else statements))
    out: list[str] = []
    for sql in statements:
        out.extend(_render_one(sql, ctx))
    return out


def retention_statements(
    statements: list[str], retention: Retention, cluster: str | None = None
) -> list[str]:
    """`ALTER TABLE ... MODIFY TTL` (or `REMOVE TTL`) for each table with a time column, so a
    store created earlier gets the retention too. Tables are found in `statements`."""
    sharded = sharded_tables(statements)
    on_cluster = f" ON CLUSTER '{check_cluster_name(cluster)}'" if cluster else ""
    out = []
    for sql in statements:
        match = _CREATE_TABLE.match(sql.strip())
        if not match or not _is_merge_tree(sql):
            continue
        database, table = _split_name(match.group(2))
        column = ttl_column(table, sql)
        if column is None:
            continue
        target = _local(database, table) if cluster and table in sharded else f"{database}.{table}"
        if retention.forever:
            out.append(f"ALTER TABLE {target}{on_cluster} REMOVE TTL")
        else:
            out.append(f"ALTER TABLE {target}{on_cluster} MODIFY TTL {retention.expression(column)}")
    return out


def schema_statements() -> list[str]:
    """Every single-node statement of the schema, in order (database, bookkeeping, migrations)."""
    return schema.all_statements()


def script(cluster: str | None = None, retention: Retention | None = None) -> list[str]:
    """The whole DDL as `tracehouse schema --print` shows it."""
    base = schema_statements()
    out = render(base, cluster, retention)
    if retention is not None:
        out += retention_statements(base, retention, cluster)
    return out
