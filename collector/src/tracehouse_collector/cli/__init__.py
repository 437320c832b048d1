"""The `tracehouse` command line.

`app` builds the root parser from the command groups (one module each: `serve`, `sql`, `schema`,
`query`, `traces`, `runs`, `models`, `demo`) and dispatches; `common` holds what the groups share
(failing with a message, the store and server arguments, opening either); `output` renders result
sets; `server_client` calls a running collector's REST API. Nothing here imports `app` back.
"""
