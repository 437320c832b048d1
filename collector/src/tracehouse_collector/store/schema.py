"""What query code needs to know about the tables; the tables themselves are the migration files.

The DDL lives in `store/migrations/*.sql` (rendered by `store/ddl.py`); why the tables look as
they do is in docs/architecture.md. This module keeps the names and the few expressions that
query code shares with those files, so a planner on raw spans builds the very states the
rollup views build (tests/test_schema_ddl.py checks that the files hold these expressions).
"""

from __future__ import annotations

DATABASE = "tracehouse"

# Usage of every span per minute and per hour (llm_usage_1m, llm_usage_1h): counts, token and
# cost sums are exact; percentiles are DDSketch states (quantilesDD) with a relative error of at
# most ROLLUP_RELATIVE_ERROR on each reported value.
ROLLUP_RELATIVE_ERROR = 0.01
ROLLUP_LEVELS = (0.5, 0.9, 0.95, 0.99)
_DD = f"quantilesDD({ROLLUP_RELATIVE_ERROR}, {', '.join(map(str, ROLLUP_LEVELS))})"
ROLLUP_DIMENSIONS = ("ServiceName", "SpanName", "GenAIOperation", "GenAIProvider", "Model", "ExperimentName")
TTFT_MS_SQL = (
    "1000 * coalesce(toFloat64OrNull(SpanAttributes['gen_ai.response.time_to_first_chunk']), "
    "toFloat64OrNull(SpanAttributes['tracehouse.response.time_to_first_chunk']))"
)
# TTFT_MS_SQL as otel_traces keeps it per span (migration 12, MATERIALIZED at insert): what queries
# over stored spans read, so they leave the attribute maps (prompts, replies) on disk.
TTFT_MS_COLUMN = "TimeToFirstTokenMs"
UNPRICED_SQL = "PriceSource = 'unpriced'"

# The rollup's row for a group of spans, as the last migration of llm_usage_1m_mv (7) computes it; also used
# by the query planner on raw spans at the edges of a range, so both sides make identical states.
USAGE_STATES: tuple[tuple[str, str], ...] = (
    ("count()", "Spans"),
    ("countIf(StatusCode = 'Error')", "Errors"),
    ("sum(Duration)", "DurationSumNs"),
    ("max(Duration)", "DurationMaxNs"),
    ("min(Duration)", "DurationMinNs"),
    (f"{_DD.replace('quantilesDD', 'quantilesDDState')}(Duration / 1e6)", "DurationMs"),
    (f"countIf(isNotNull({TTFT_MS_SQL}))", "TtftSpans"),
    (
        f"{_DD.replace('quantilesDD', 'quantilesDDStateIf')}(assumeNotNull({TTFT_MS_SQL}), isNotNull({TTFT_MS_SQL}))",
        "TtftMs",
    ),
    # Spans without a TTFT give the identities of min and max (+inf, -inf), so only those with one count.
    (f"min(ifNull({TTFT_MS_SQL}, inf))", "TtftMinMs"),
    (f"max(ifNull({TTFT_MS_SQL}, -inf))", "TtftMaxMs"),
    ("sum(InputTokens)", "InputTokens"),
    ("sum(OutputTokens)", "OutputTokens"),
    ("sum(CacheReadTokens)", "CacheReadTokens"),
    ("sum(CacheWriteTokens)", "CacheWriteTokens"),
    ("sum(ReasoningTokens)", "ReasoningTokens"),
    ("sum(TotalTokens)", "TotalTokens"),
    # Qualified: the column TotalTokens, not the alias of the sum above.
    ("sumIf(otel_traces.TotalTokens, TokensEstimated)", "EstimatedTokens"),
    ("sum(TotalCostUSD)", "CostUSD"),
    (f"countIf({UNPRICED_SQL})", "UnpricedSpans"),
    (f"sumIf(otel_traces.TotalTokens, {UNPRICED_SQL})", "UnpricedTokens"),
)
