"""Which landed files are new since a sensor's cursor (plain Python, no Dagster)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .ingest import RegisteredPath, modified_at, visible_files


@dataclass(frozen=True)
class NewFiles:
    paths: list[Path]
    batch_key: str  # hash of the new files' names, sizes and modification times
    cursor: str


def _load(cursor: str | None) -> tuple[int, set[str]]:
    if not cursor:
        return -1, set()
    state = json.loads(cursor)
    return int(state["ctime_ns"]), set(state["paths_at_watermark"])


def new_files(
    folder: Path, cursor: str | None, registered: Mapping[str, RegisteredPath] | None = None
) -> NewFiles | None:
    """Files that appeared or changed after the cursor and that the registry does not hold (at
    their size and modification time), or None.

    Only names and `stat` are read: no file is opened, so a tick costs the same whatever the
    files weigh. `registered` is keyed by path relative to `folder` (from bronze.files), so a
    sensor that starts with no cursor after the main job finds nothing to do. The watermark is the
    inode change time (ctime), which the kernel sets when a file is written or moved into place;
    unlike mtime it cannot be back-dated by `cp -p` or a delivery tool that preserves
    timestamps, so late files are not skipped.
    """
    watermark, seen_at_watermark = _load(cursor)
    registered = registered or {}
    if not folder.exists():
        return None
    candidates = []
    top, at_top = watermark, set(seen_at_watermark)
    for rel, entry in visible_files(folder):
        stat = entry.stat(follow_symlinks=False)  # a link is looked at, not followed
        ctime = stat.st_ctime_ns
        if ctime < watermark or (ctime == watermark and rel in seen_at_watermark):
            continue
        # The watermark moves past registered files too, so they are not looked at again.
        if ctime > top:
            top, at_top = ctime, {rel}
        elif ctime == top:
            at_top.add(rel)
        known = registered.get(rel)
        if known is None or not known.unchanged(stat.st_size, modified_at(stat)):
            candidates.append((ctime, rel, Path(entry.path), stat.st_size, stat.st_mtime_ns))
    cursor_out = json.dumps({"ctime_ns": top, "paths_at_watermark": sorted(at_top)})
    if not candidates:
        return NewFiles([], "", cursor_out) if top != watermark else None
    candidates.sort()
    digest = hashlib.sha256()
    for _, rel, _, size, mtime in sorted(candidates, key=lambda c: c[1]):
        digest.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return NewFiles(
        paths=[c[2] for c in candidates], batch_key=digest.hexdigest(), cursor=cursor_out
    )
