"""The content-addressed artifact store: `<data dir>/artifacts/<first 2 digits>/<sha256>`.

Paths come only from a digest checked against the bytes, never from a client's name. The server
(api/rest_runs.py) streams uploads into it; `tracehouse import`, `runs export` and `reproduce`
read and write it directly when they run on the store rather than through a server.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MAX_ARTIFACT_BYTES = 4 * 2**30


class ArtifactStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def write(self, digest: str, data: bytes) -> None:
        """Store bytes the caller has checked against `digest`; content already there is kept."""
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, target)  # whole or absent, never half-written


def artifact_root(data_dir: Path) -> Path:
    return Path(data_dir) / "artifacts"


def max_artifact_bytes() -> int:
    raw = os.environ.get("TRACEHOUSE_MAX_ARTIFACT_BYTES", "")
    try:
        return int(raw) if raw else DEFAULT_MAX_ARTIFACT_BYTES
    except ValueError:
        return DEFAULT_MAX_ARTIFACT_BYTES


def artifact_store(data_dir: Path) -> ArtifactStore:
    """The artifact store of a state directory, with the configured size limit."""
    return ArtifactStore(artifact_root(data_dir), max_artifact_bytes())
