"""The peers benchmark's table: each system's figures, and how many times better Tracehouse did
(a ratio above 1 means Tracehouse was faster, or smaller on disk), with the peers that could not
run and why; then what each of Tracehouse's tables takes on disk."""

from __future__ import annotations

from dataclasses import dataclass

from bench.peers.disk import Part, Usage

BASE = "Tracehouse"


@dataclass(frozen=True)
class Result:
    """One system's figures: ingest throughput until the data read back, trace lookups, and the
    disk its store took once the server stopped."""

    system: str
    spans: int  # spans sent and acknowledged
    acked_s: float  # from the first send until every request was acknowledged
    visible_s: float  # from the first send until the last traces read back whole
    lookup_ms: float  # median time of one trace lookup (every span of the trace)
    disk_bytes: int  # disk blocks its files held after it stopped (as `du` counts them)

    @property
    def spans_per_s(self) -> float:
        return self.spans / self.visible_s

    @property
    def disk_per_span(self) -> float:
        return self.disk_bytes / self.spans


def ratios(base: Result, other: Result) -> dict[str, float]:
    """How many times better `base` did than `other`: throughput over throughput, the other's
    times over base's times, the other's disk over base's (so above 1 is always base ahead)."""
    return {
        "spans_per_s": base.spans_per_s / other.spans_per_s,
        "acked_s": other.acked_s / base.acked_s,
        "lookup_ms": other.lookup_ms / base.lookup_ms,
        "disk": other.disk_per_span / base.disk_per_span,
    }


def table(results: list[Result], skipped: dict[str, str]) -> str:
    """Tracehouse first, then each peer with its ratios; then the peers that were skipped."""
    base = next((r for r in results if r.system == BASE), None)
    head = f"{'system':14} {'spans':>7} {'acked s':>8} {'visible s':>10} {'spans/s':>9} {'lookup ms':>10}"
    head += f" {'disk MB':>8} {'B/span':>7}"
    lines = [head + ("   Tracehouse ahead by: spans/s, acked, lookup, disk" if base else "")]
    for r in sorted(results, key=lambda r: r.system != BASE):
        row = (
            f"{r.system:14} {r.spans:>7} {r.acked_s:>8.2f} {r.visible_s:>10.2f} {r.spans_per_s:>9.0f}"
            f" {r.lookup_ms:>10.1f} {r.disk_bytes / 1e6:>8.1f} {r.disk_per_span:>7.0f}"
        )
        if base is not None and r is not base:
            x = ratios(base, r)
            row += f"   {x['spans_per_s']:.1f}x, {x['acked_s']:.1f}x, {x['lookup_ms']:.1f}x, {x['disk']:.1f}x"
        lines.append(row)
    lines += [f"{name:14} skipped: {why}" for name, why in skipped.items()]
    return "\n".join(lines)


def breakdown(parts: list[Part], settled: Usage, as_left: Usage, spans: int) -> str:
    """Tracehouse's store by table (active parts, bytes per span sent, of which its indexes,
    share of all tables), how they add up to its files, and what the parts merges replaced still
    held."""
    tables: dict[str, list[Part]] = {}
    for p in parts:
        tables.setdefault(p.table, []).append(p)
    size = {t: sum(p.bytes for p in ps) for t, ps in tables.items()}
    total = sum(size.values())
    head = f"{'parts':>5} {'rows':>8} {'MB':>7} {'B/span':>7} {'index MB':>8} {'share':>6}"
    lines = [f"Tracehouse on disk by table: {head}"]
    for t in sorted(tables, key=lambda t: (-size[t], t)):
        rows = sum(p.rows for p in tables[t])
        index = sum(p.index_bytes for p in tables[t])
        lines.append(
            f"  {t:26} {len(tables[t]):>5} {rows:>8} {size[t] / 1e6:>7.2f} {size[t] / spans:>7.0f}"
            f" {index / 1e6:>8.2f} {size[t] / total:>6.1%}"
        )
    lines.append(
        f"  tables {total / 1e6:.2f} MB of {settled.apparent / 1e6:.2f} MB in files,"
        f" {settled.allocated / 1e6:.2f} MB of disk blocks; with the parts merges replaced"
        f" (not yet removed) {as_left.allocated / 1e6:.2f} MB"
    )
    return "\n".join(lines)
