"""`tracehouse demo`: fill a running collector with realistic data, through OTLP like any client.

A client application, apart from the collector's core: `app` runs it, `fake_openai` serves the
LLM answers, `llm_app` is the agent and its history, `training` the runs, `summary` what was sent.

Three parts, all sent by the Tracehouse SDK to the collector's OTLP/HTTP endpoint:

- an LLM agent app: the real `openai` client, instrumented by Tracehouse, talking to a fake
  OpenAI-compatible server started here on a local port (plain and streamed chat completions
  with usage, a tool call, one HTTP 500), with `@tracehouse.trace` steps, sessions, users and
  evaluation scores;
- a history of LLM calls over the last days: spans with explicit, backdated start and end
  times carrying the GenAI attributes, so charts have a time series;
- a few training runs (`tracehouse.run`): params, metric curves, a CSV artifact and a `.luml`
  model of a small scikit-learn classifier.

Everything the demo writes is derived from `--seed` (ids and wall-clock times aside).
"""
