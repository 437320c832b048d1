"""Start-up hook of the `tracehouse` distribution: zero-code activation.

Two files installed into site-packages call `start()` while the interpreter starts:
`tracehouse.pth` (a guarded import line, which costs one dict lookup when the variable is not
set) and `tracehouse.start` (PEP 829's entry point, which replaces `.pth` import lines from
Python 3.15 on). This module is separate from the `tracehouse` package so that the hook
imports nothing else until the variable asks for it.
"""

import os

_started = False


def start() -> None:
    global _started
    if _started or not os.environ.get("TRACEHOUSE_INSTRUMENT", "").strip():
        return
    _started = True  # site-packages may be scanned twice (lib and lib64): run once
    try:
        from tracehouse._auto import activate_from_environment

        activate_from_environment()
    except Exception as exc:  # never break the application's start
        import sys

        print(f"tracehouse: instrumentation not activated: {exc!r}", file=sys.stderr)
