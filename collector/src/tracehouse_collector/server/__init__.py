"""The server side of `tracehouse serve`: `serve` wires receivers, processors, writer, store and
the APIs together; `ingest` is the receivers' front door; `auth`, `tls`, `http_timeouts`,
`inflight` and `memory` guard it; `demo_offer` suggests (or loads) the demo on an empty store."""
