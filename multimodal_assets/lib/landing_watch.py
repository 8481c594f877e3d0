"""Which landed files are new since a sensor's cursor (plain Python, no Dagster)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .ingest import sha256_file, visible_files


@dataclass(frozen=True)
class NewFiles:
    paths: list[Path]
    batch_key: str  # content hash of the batch: same bytes → same key
    cursor: str


def _load(cursor: str | None) -> tuple[int, set[str]]:
    if not cursor:
        return -1, set()
    state = json.loads(cursor)
    return int(state["ctime_ns"]), set(state["paths_at_watermark"])


def new_files(folder: Path, cursor: str | None) -> NewFiles | None:
    """Files that appeared after the cursor, or None.

    The watermark is the inode change time (ctime), which the kernel sets when a file is
    written or moved into place; unlike mtime it cannot be back-dated by `cp -p` or a delivery
    tool that preserves timestamps, so late files are not skipped.
    """
    watermark, seen_at_watermark = _load(cursor)
    if not folder.exists():
        return None
    candidates = []
    for path, relative in visible_files(folder):
        ctime = path.stat().st_ctime_ns
        rel = relative.as_posix()
        if ctime > watermark or (ctime == watermark and rel not in seen_at_watermark):
            candidates.append((ctime, rel, path))
    if not candidates:
        return None
    candidates.sort()
    top = max(c[0] for c in candidates)
    at_top = {rel for ctime, rel, _ in candidates if ctime == top}
    if top == watermark:
        at_top |= seen_at_watermark
    digest = hashlib.sha256()
    for sha in sorted(sha256_file(path) for _, _, path in candidates):
        digest.update(sha.encode())
    return NewFiles(
        paths=[path for _, _, path in candidates],
        batch_key=digest.hexdigest(),
        cursor=json.dumps({"ctime_ns": top, "paths_at_watermark": sorted(at_top)}),
    )
