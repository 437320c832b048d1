-- otel_traces: the part an insert writes is compact (a few files) instead of wide (one pair of files per column)
-- A wide part of otel_traces is some 200 files: a data and a mark file for every column and
-- every subcolumn of its maps and nested events and links, and those of the skip and text
-- indexes. The collector writes one such part per insert (a few per second under load) and the
-- merges that follow write and delete them again; creating that many files is a large share of
-- ClickHouse's insert cost (on ext4, ~20% of the CPU of an insert of 16k LLM spans went into
-- allocating inodes). A compact part keeps all columns in one data file, so small parts are
-- written as compact up to 131072 rows (above the collector's largest insert,
-- TRACEHOUSE_MAX_INSERT_ROWS = 100000): bench.ingest.store_cost measured 1.2-1.5 CPU-s less per
-- 100k spans inserted and ~0.35 less in the merges after, for ~10% more disk while parts are
-- small. Parts merged past that size are wide, as before, so reads of large parts are unchanged.
-- Columns, types, keys, codecs and indexes stay as the exporter makes them; this is a storage
-- setting of the table only.

ALTER TABLE {{database}}.{{table otel_traces}}{{on_cluster}} MODIFY SETTING min_rows_for_wide_part = 131072;
