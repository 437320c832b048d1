"""bench/peers' report: the ratios it prints and the table's rows (not the timing itself); and
its disk measure: files counted as `du` counts them, a real chDB store's active parts, and the
parts merges replaced left out."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from bench.collector import clean_env
from bench.ingest.run import build_requests
from bench.peers.disk import Part, Usage, active_parts, disk_usage, replaced_parts
from bench.peers.report import BASE, Result, breakdown, ratios, table
from bench.peers.run import TEXTS, with_own_texts

RATIO = re.compile(r"\d\.\dx")
TRACEHOUSE = Result(BASE, spans=6144, acked_s=1.5, visible_s=2.0, lookup_ms=4.0, disk_bytes=12_288_000)
PHOENIX = Result("Phoenix", spans=6144, acked_s=6.0, visible_s=12.0, lookup_ms=30.0, disk_bytes=36_864_000)
MLFLOW = Result("MLflow", spans=6144, acked_s=3.0, visible_s=3.0, lookup_ms=2.0, disk_bytes=6_144_000)


def test_ratios_read_as_how_many_times_tracehouse_is_ahead():
    got = ratios(TRACEHOUSE, PHOENIX)
    # spans/s: 6144/2 against 6144/12; acknowledged: 6 s against 1.5 s; lookup 30 ms against 4 ms
    assert got["spans_per_s"] == pytest.approx(float(Fraction(6144, 2) / Fraction(6144, 12)))
    assert got["spans_per_s"] == pytest.approx(6.0)
    assert got["acked_s"] == pytest.approx(4.0)
    assert got["lookup_ms"] == pytest.approx(7.5)
    assert got["disk"] == pytest.approx(3.0)  # 6000 bytes a span against 2000
    # a peer ahead reads below 1
    assert ratios(TRACEHOUSE, MLFLOW)["lookup_ms"] == pytest.approx(0.5)
    assert ratios(TRACEHOUSE, MLFLOW)["disk"] == pytest.approx(0.5)
    assert ratios(TRACEHOUSE, TRACEHOUSE) == {
        "spans_per_s": 1.0,
        "acked_s": 1.0,
        "lookup_ms": 1.0,
        "disk": 1.0,
    }


def test_the_table_puts_tracehouse_first_and_lists_the_skipped():
    text = table([PHOENIX, TRACEHOUSE, MLFLOW], {"Other": "not installed in /tmp/venv"})
    lines = text.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [BASE, "Phoenix", "MLflow", "Other"]
    # disk in MB (10^6 bytes) and bytes a span: 12,288,000 / 6144 = 2000
    assert lines[1].split()[1:] == ["6144", "1.50", "2.00", "3072", "4.0", "12.3", "2000"]  # no ratios here
    assert not RATIO.search(lines[1])
    assert lines[2].split()[1:] == ["6144", "6.00", "12.00", "512", "30.0", "36.9", "6000"] + [
        "6.0x,",
        "4.0x,",
        "7.5x,",
        "3.0x",
    ]
    assert lines[3].endswith("1.5x, 2.0x, 0.5x, 0.5x")
    assert lines[4] == f"{'Other':14} skipped: not installed in /tmp/venv"


def test_without_tracehouse_there_are_no_ratios():
    lines = table([PHOENIX], {}).splitlines()
    assert "ahead" not in lines[0] and not RATIO.search(lines[1])


def test_the_breakdown_sums_each_tables_parts():
    parts = [
        Part("otel_traces", 100, 3000, 1500, Path("/s/a/1_1_1_0")),
        Part("trace_span_docs", 60, 5000, 0, Path("/s/b/1_1_1_0")),
        Part("trace_span_docs", 40, 1000, 20_000, Path("/s/b/1_2_2_0")),
        Part("trace_summary", 10, 1000, 0, Path("/s/c/1_1_1_0")),
    ]
    lines = breakdown(
        parts, Usage(allocated=16384, apparent=10500), Usage(40960, 30000), spans=100
    ).splitlines()
    # largest first; share of the 10,000 bytes of all tables
    assert [line.split() for line in lines[1:4]] == [
        ["trace_span_docs", "2", "100", "0.01", "60", "0.02", "60.0%"],
        ["otel_traces", "1", "100", "0.00", "30", "0.00", "30.0%"],
        ["trace_summary", "1", "10", "0.00", "10", "0.00", "10.0%"],
    ]
    assert lines[4].split()[1:9] == ["0.01", "MB", "of", "0.01", "MB", "in", "files,", "0.02"]


def _find_usage(root: Path, *prune: Path) -> Usage:
    """find(1)'s count of the files under `root` (each inode once, no *.log): the independent
    measure."""
    skip = [arg for p in prune for arg in ("-path", str(p), "-prune", "-o")]
    cmd = ["find", str(root), *skip, "-type", "f", "!", "-name", "*.log", "-printf", "%i %b %s\\n"]
    files = {
        line.split()[0]: line.split()[1:] for line in subprocess.check_output(cmd, text=True).splitlines()
    }
    return Usage(sum(int(b) * 512 for b, _ in files.values()), sum(int(s) for _, s in files.values()))


def test_disk_usage_counts_files_as_find_does(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "a.sqlite").write_bytes(os.urandom(10_000))
    os.link(tmp_path / "db" / "a.sqlite", tmp_path / "db" / "hardlink")  # the same file again
    (tmp_path / "db" / "b").write_bytes(b"x" * 5000)
    (tmp_path / "server.log").write_bytes(b"log" * 4000)  # the benchmark's, not the system's
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "part").write_bytes(b"y" * 7000)
    assert disk_usage(tmp_path) == _find_usage(tmp_path)
    assert disk_usage(tmp_path).apparent == 10_000 + 5000 + 7000
    assert disk_usage(tmp_path, skip=[tmp_path / "old"]) == _find_usage(tmp_path, tmp_path / "old")
    assert disk_usage(tmp_path, skip=[tmp_path / "old"]).apparent == 15_000


# Three inserts (three parts), merged into one; the parts it replaced kept on disk an hour.
_STORE = """
import sys, chdb.session
s = chdb.session.Session(sys.argv[1])
s.query("CREATE DATABASE tracehouse")
s.query("CREATE TABLE tracehouse.t (k UInt64, v String, INDEX v_bloom v TYPE bloom_filter GRANULARITY 1)"
        " ENGINE = MergeTree ORDER BY k SETTINGS old_parts_lifetime = 3600")
for i in range(3):
    s.query(f"INSERT INTO tracehouse.t SELECT number, repeat('v', number % 97) FROM numbers({i * 1000}, 1000)")
s.query("OPTIMIZE TABLE tracehouse.t FINAL")
s.query("CREATE TABLE tracehouse.u (k UInt64) ENGINE = MergeTree ORDER BY k")
s.query("INSERT INTO tracehouse.u SELECT number FROM numbers(10)")
s.close()
"""


def test_a_stopped_store_counts_its_active_parts_not_those_merges_replaced(tmp_path):
    store = tmp_path / "data"
    subprocess.run([sys.executable, "-c", _STORE, str(store)], env=clean_env(), check=True, timeout=120)
    parts = sorted(active_parts(store), key=lambda p: p.table)
    assert [(p.table, p.rows) for p in parts] == [("t", 3000), ("u", 10)]
    for p in parts:  # bytes_on_disk: the part's files, but for a few small bookkeeping texts
        assert 0 < _find_usage(p.path).apparent - p.bytes < 1024
    # the index's compressed bytes lie in its files (skp_idx*, packed with its marks)
    assert 0 < parts[0].index_bytes <= sum(f.stat().st_size for f in parts[0].path.glob("skp_idx*"))
    assert parts[1].index_bytes == 0
    replaced = replaced_parts(parts)
    assert sorted(d.name for d in replaced) == ["all_1_1_0", "all_2_2_0", "all_3_3_0"]
    assert all(d.parent == parts[0].path.resolve().parent for d in replaced)
    settled = disk_usage(tmp_path, skip=replaced)
    assert settled == _find_usage(tmp_path, *replaced)
    assert disk_usage(tmp_path).apparent - settled.apparent == sum(_find_usage(d).apparent for d in replaced)


def _messages(requests_: list[bytes]) -> list[list[tuple[str, AnyValue]]]:
    """Each span's attributes, in order, as (key, value)."""
    return [
        [(kv.key, kv.value) for kv in span.attributes]
        for body in requests_
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]


@pytest.mark.parametrize("texts", ["distinct", "random"])
def test_own_texts_give_every_span_its_own_prompt_and_answer_of_the_same_length(texts):
    before = build_requests(3, 16)
    after = with_own_texts(before, TEXTS[texts])
    old, new = _messages(before), _messages(after)
    messages = ("gen_ai.input.messages", "gen_ai.output.messages")
    for o, n in zip(old, new, strict=True):
        assert [kv for kv in o if kv[0] not in messages] == [kv for kv in n if kv[0] not in messages]
        assert [len(v.string_value) for k, v in o if k in messages] == [
            len(v.string_value) for k, v in n if k in messages
        ]
    for key in messages:
        assert (
            len({v.string_value for span in old for k, v in span if k == key}) == 16
        )  # build_requests' texts
        assert len({v.string_value for span in new for k, v in span if k == key}) == 48  # one per span
