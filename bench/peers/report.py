"""The peers benchmark's table: each system's figures, and how many times better Tracehouse did
(a ratio above 1 means Tracehouse was faster), with the peers that could not run and why."""

from __future__ import annotations

from dataclasses import dataclass

BASE = "Tracehouse"


@dataclass(frozen=True)
class Result:
    """One system's figures: ingest throughput until the data read back, and trace lookups."""

    system: str
    spans: int  # spans sent and acknowledged
    acked_s: float  # from the first send until every request was acknowledged
    visible_s: float  # from the first send until the last traces read back whole
    lookup_ms: float  # median time of one trace lookup (every span of the trace)

    @property
    def spans_per_s(self) -> float:
        return self.spans / self.visible_s


def ratios(base: Result, other: Result) -> dict[str, float]:
    """How many times better `base` did than `other`: throughput over throughput, the other's
    times over base's times (so above 1 is always base ahead)."""
    return {
        "spans_per_s": base.spans_per_s / other.spans_per_s,
        "acked_s": other.acked_s / base.acked_s,
        "lookup_ms": other.lookup_ms / base.lookup_ms,
    }


def table(results: list[Result], skipped: dict[str, str]) -> str:
    """Tracehouse first, then each peer with its ratios; then the peers that were skipped."""
    base = next((r for r in results if r.system == BASE), None)
    head = f"{'system':14} {'spans':>7} {'acked s':>8} {'visible s':>10} {'spans/s':>9} {'lookup ms':>10}"
    lines = [head + ("   Tracehouse ahead by: spans/s, acked, lookup" if base else "")]
    for r in sorted(results, key=lambda r: r.system != BASE):
        row = (
            f"{r.system:14} {r.spans:>7} {r.acked_s:>8.2f} {r.visible_s:>10.2f} {r.spans_per_s:>9.0f}"
            f" {r.lookup_ms:>10.1f}"
        )
        if base is not None and r is not base:
            x = ratios(base, r)
            row += f"   {x['spans_per_s']:.1f}x, {x['acked_s']:.1f}x, {x['lookup_ms']:.1f}x"
        lines.append(row)
    lines += [f"{name:14} skipped: {why}" for name, why in skipped.items()]
    return "\n".join(lines)
