-- The database, and the record of applied migrations (not a migration itself)

CREATE DATABASE IF NOT EXISTS {{database}}{{on_cluster}};

-- Every node keeps the whole record (one replication group for all nodes on a cluster), so any
-- node can tell which migrations the cluster has.
CREATE TABLE IF NOT EXISTS {{database}}.schema_migrations{{on_cluster}}
(
    Version UInt32,
    Description String,
    AppliedAt DateTime DEFAULT now()
)
ENGINE = {{node_wide_engine ReplacingMergeTree}}
ORDER BY Version;
