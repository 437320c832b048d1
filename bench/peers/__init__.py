"""Peers benchmark: the same LLM span ingest and trace lookup against Tracehouse, Arize Phoenix and MLflow."""
