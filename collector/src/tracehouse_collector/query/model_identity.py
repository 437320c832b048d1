"""The model a call is counted under: one definition for every view, query and dashboard.

    identity = the response model, else the request model, with a trailing snapshot date
               (-2024-08-06, -20240806, @20240806) removed

A failed call has no response model: without the date removal `gpt-4o-mini` (its request)
and `gpt-4o-mini-2024-07-18` (the successful calls' response) would be two rows for one
model. Nothing else is changed (case, provider prefixes), so the identity stays the name the
provider uses. The stored columns keep what the producer sent: filter or group by
`request_model` / `response_model` to tell snapshots apart.
"""

from __future__ import annotations

import re

# No braces (`{...}` reads as a query parameter to some clients) and no `$` (a variable to
# Grafana): RE2's end of text is `\z`, written `\\z` in a ClickHouse string.
_D = "[0-9]"
_SNAPSHOT_SQL = f"'[-@]({_D * 4}-{_D * 2}-{_D * 2}|{_D * 8})\\\\z'"
_SNAPSHOT = re.compile(r"[-@](\d{4}-\d{2}-\d{2}|\d{8})$")

RAW_MODEL_SQL = "if(GenAIResponseModel != '', GenAIResponseModel, GenAIRequestModel)"


def identity_sql(model_sql: str) -> str:
    """The identity of a model name given as an SQL expression."""
    return f"replaceRegexpOne({model_sql}, {_SNAPSHOT_SQL}, '')"


MODEL_SQL = identity_sql(RAW_MODEL_SQL)  # over otel_traces
ROLLUP_MODEL_SQL = identity_sql("Model")  # over llm_usage_1m / llm_usage_1h (Model = RAW_MODEL_SQL)


def model_identity(response_model: str | None, request_model: str | None = None) -> str:
    """The same identity, in Python (for rows read one by one)."""
    return _SNAPSHOT.sub("", response_model or request_model or "")
