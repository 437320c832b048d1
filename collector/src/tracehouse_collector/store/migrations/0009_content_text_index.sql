-- Full-text search over what LLM calls said: a text (inverted) index on the span attribute values
-- Prompts, responses, system instructions and tool arguments and results live in SpanAttributes
-- under the keys of each producer's convention (query/traces.py: SEARCH_KEYS). The index covers
-- every attribute value, lower-cased and split at each non-alphanumeric character, so a search
-- `hasAnyTokens(mapValues(SpanAttributes), [token])` skips every granule without the token; the
-- query then checks the content keys themselves, so a token found in another attribute (a
-- model name, an URL) does not count.
--
-- Why this index: measured on 1M spans with 80 words of content per LLM call (bench/query), a
-- tokenbf_v1 bloom filter over ~650k distinct tokens per granule is saturated and skips nothing,
-- ngrambf_v1 more so; the text index, generally available since ClickHouse 26.2, answers a
-- rare-word search from its posting lists. An index on one map key (SpanAttributes['k']) is not
-- used by the query planner, which reads map keys as subcolumns; mapValues() is.
--
-- Parts written before this migration have no index until they are merged or the index is
-- materialized (ALTER TABLE otel_traces MATERIALIZE INDEX idx_content_text): searches there read
-- the attribute values themselves, with the same answers.

ALTER TABLE {{database}}.{{table otel_traces}}{{on_cluster}} ADD INDEX IF NOT EXISTS idx_content_text mapValues(SpanAttributes) TYPE text(tokenizer = splitByNonAlpha, preprocessor = lowerUTF8(mapValues(SpanAttributes)));
