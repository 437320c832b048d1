"""The schema's migrations: frozen SQL files, rendered for one node or a cluster, with retention.

Each migration is one file under `store/migrations/` (`0001_otel_tables.sql`, ...), the SQL a
reviewer reads, in the style of the OpenTelemetry Collector's ClickHouse exporter templates:
what differs between deployments is a parameter, never a rewrite of the statement text.

    {{database}}          the database, `tracehouse`
    {{on_cluster}}        nothing, or ` ON CLUSTER 'name'`
    {{cluster}}           the quoted cluster name (in Distributed engines)
    {{table T}}           where table T's rows live: `T`, or `T_local` on a cluster, where the
                          Distributed table `T` in front of it keeps the public name
    {{source T}}          what a materialized view reads: `db.T`, or on a cluster the shard's own
                          `db.T_local AS T` (each shard fills its rollups from its own rows)
    {{engine E}}          E (`MergeTree`, `ReplacingMergeTree(Version)`, ...), or on a cluster its
                          Replicated form with the replication path of the table's shard
    {{node_wide_engine E}} the same for a table every node keeps whole (schema bookkeeping)
    {{ttl C}}             nothing, or `TTL toDateTime(C) + INTERVAL n UNIT` (retention)
    {{dedup_window}}      how many recent insert tokens a table remembers, so a retried batch
                          is not stored twice (`non_replicated_...` or `replicated_...` window)

A line that holds only a parameter rendering to nothing is left out. A statement whose leading
comments include `-- cluster only` is rendered only for a cluster (the Distributed tables).

Released migrations never change (tests/test_schema_ddl.py pins each file's digest); a change
to the schema is a new file with the next number.

What a cluster must provide: the `{shard}` and `{replica}` macros on every node (ClickHouse fills
the `{database}` and `{table}` parts of the replication path itself), ClickHouse Keeper or
ZooKeeper, and the cluster named in `remote_servers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from tracehouse_collector.store.schema import DATABASE

DEDUP_WINDOW = 10_000
REPLICATION_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
# Tables every node needs the same copy of (not sharded): one replication group for all nodes.
NODE_WIDE_PATH = "/clickhouse/tables/all/{database}/{table}"
# Replica names are often unique only within a shard; within one all-node group they must not clash.
NODE_WIDE_REPLICA = "{shard}-{replica}"
LOCAL_SUFFIX = "_local"
CLUSTER_ONLY = "-- cluster only"

_UNITS = {"h": "HOUR", "d": "DAY", "w": "WEEK"}
_PARAMETER = re.compile(r"\{\{(\w+)(?: ([^{}]+))?\}\}")
_MIGRATION_FILE = re.compile(r"^(\d{4})_\w+\.sql$")


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


@dataclass(frozen=True)
class Deployment:
    """What the statements are rendered for: one node or a cluster, and a retention or none."""

    cluster: str | None = None
    retention: Retention | None = None

    def __post_init__(self) -> None:
        if self.cluster is not None:
            check_cluster_name(self.cluster)

    def parameter(self, name: str, arg: str) -> str:
        clustered = self.cluster is not None
        if name == "database":
            return DATABASE
        if name == "on_cluster":
            return f" ON CLUSTER '{self.cluster}'" if clustered else ""
        if name == "cluster" and clustered:
            return f"'{self.cluster}'"
        if name == "table" and arg:
            return f"{arg}{LOCAL_SUFFIX}" if clustered else arg
        if name == "source" and arg:
            return f"{DATABASE}.{arg}{LOCAL_SUFFIX} AS {arg}" if clustered else f"{DATABASE}.{arg}"
        if name == "engine" and arg:
            return _replicated(arg, REPLICATION_PATH, "{replica}") if clustered else arg
        if name == "node_wide_engine" and arg:
            return _replicated(arg, NODE_WIDE_PATH, NODE_WIDE_REPLICA) if clustered else arg
        if name == "ttl" and arg:
            keep = self.retention is None or self.retention.forever
            return "" if keep else f"TTL {self.retention.expression(arg)}"  # type: ignore[union-attr]
        if name == "dedup_window":
            kind = "replicated" if clustered else "non_replicated"
            return f"{kind}_deduplication_window = {DEDUP_WINDOW}"
        raise DDLError(f"unknown template parameter {{{{{name}{' ' + arg if arg else ''}}}}}")


def _replicated(engine: str, path: str, replica: str) -> str:
    """`ReplacingMergeTree(Version)` -> `ReplicatedReplacingMergeTree('path', 'replica', Version)`."""
    family, _, args = engine.partition("(")
    args = args.removesuffix(")").strip()
    return f"Replicated{family}(" + ", ".join(a for a in (f"'{path}'", f"'{replica}'", args) if a) + ")"


# -- templates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """One statement of a migration file: its SQL with parameters, and whether only a cluster runs it."""

    sql: str
    cluster_only: bool = False

    def render(self, deployment: Deployment) -> str | None:
        if self.cluster_only and deployment.cluster is None:
            return None
        lines = []
        for line in self.sql.splitlines():
            rendered = _PARAMETER.sub(lambda m: deployment.parameter(m.group(1), m.group(2) or ""), line)
            if rendered.strip() or not _PARAMETER.search(line):
                lines.append(rendered)
        return "\n".join(lines)

    def names(self, parameter: str) -> list[str]:
        """The arguments of every `{{parameter arg}}` in the statement, in order."""
        return [m.group(2) for m in _PARAMETER.finditer(self.sql) if m.group(1) == parameter]


def parse(text: str) -> tuple[str, tuple[Template, ...]]:
    """A migration file -> (its description, its statements). The first line is `-- description`;
    statements end with `;` at the end of a line; comments before a statement are for readers
    (and may mark it `-- cluster only`)."""
    first, _, body = text.partition("\n")
    if not first.startswith("-- "):
        raise DDLError("a migration file starts with a `-- description` line")
    statements = []
    for chunk in re.split(r";[ \t]*\n", body + "\n"):
        lines = chunk.strip().splitlines()
        comments = []
        while lines and lines[0].lstrip().startswith("--"):
            comments.append(lines.pop(0).strip())
        if lines:
            cluster_only = any(c.startswith(CLUSTER_ONLY) for c in comments)
            statements.append(Template("\n".join(lines).strip(), cluster_only))
    return first[3:].strip(), tuple(statements)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    file: str
    templates: tuple[Template, ...]

    def statements(self, deployment: Deployment | None = None) -> list[str]:
        deployment = deployment or Deployment()
        return [s for t in self.templates if (s := t.render(deployment)) is not None]


def _read(name: str) -> str:
    return resources.files("tracehouse_collector.store").joinpath("migrations", name).read_text("utf-8")


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration, in version order, from the package's migration files."""
    folder = resources.files("tracehouse_collector.store").joinpath("migrations")
    found = sorted(
        (int(m.group(1)), entry.name)
        for entry in folder.iterdir()
        if (m := _MIGRATION_FILE.match(entry.name))
    )
    out = []
    for expected, (version, name) in enumerate(found, start=1):
        if version != expected:
            raise DDLError(f"migration {name}: expected version {expected:04d} (versions are consecutive)")
        description, templates = parse(_read(name))
        out.append(Migration(version, description, name, templates))
    return tuple(out)


@cache
def _bookkeeping() -> tuple[Template, ...]:
    return parse(_read("schema_migrations.sql"))[1]


def bookkeeping_statements(deployment: Deployment | None = None) -> list[str]:
    """The database and the table that records applied migrations."""
    deployment = deployment or Deployment()
    return [s for t in _bookkeeping() if (s := t.render(deployment)) is not None]


def tables() -> dict[str, str | None]:
    """The tables the migrations leave behind: {name: the time column of its retention, or None}.

    Read from the templates' own parameters: `CREATE TABLE ... {{table T}} ... {{ttl C}}` makes a
    table, `DROP TABLE`, `RENAME TABLE` and `EXCHANGE TABLES` on `{{table T}}` change the set.
    """
    out: dict[str, str | None] = {"schema_migrations": None}
    for t in (m_t for m in migrations() for m_t in m.templates):
        head, names = t.sql.lstrip().upper(), t.names("table")
        if not names:
            continue
        if head.startswith("CREATE TABLE"):
            ttl = t.names("ttl")
            out[names[0]] = ttl[0] if ttl else None
        elif head.startswith("DROP TABLE"):
            out.pop(names[0], None)
        elif head.startswith("RENAME TABLE"):
            out[names[1]] = out.pop(names[0], None)
        elif head.startswith("EXCHANGE TABLES"):
            out[names[0]], out[names[1]] = out.get(names[1]), out.get(names[0])
    return out


def retention_statements(retention: Retention, cluster: str | None = None) -> list[str]:
    """`ALTER TABLE ... MODIFY TTL` (or `REMOVE TTL`) for each table with a time column, so a
    store created earlier gets the retention too."""
    deployment = Deployment(cluster)
    out = []
    for table, column in tables().items():
        if column is None:
            continue
        target = f"{DATABASE}.{deployment.parameter('table', table)}{deployment.parameter('on_cluster', '')}"
        if retention.forever:
            out.append(f"ALTER TABLE {target} REMOVE TTL")
        else:
            out.append(f"ALTER TABLE {target} MODIFY TTL {retention.expression(column)}")
    return out


def script(cluster: str | None = None, retention: Retention | None = None) -> list[str]:
    """The whole DDL as `tracehouse schema --print` shows it."""
    deployment = Deployment(cluster, retention)
    out = bookkeeping_statements(deployment)
    for m in migrations():
        out.extend(m.statements(deployment))
    if retention is not None:
        out += retention_statements(retention, cluster)
    return out
