"""Keeping the data folder private to the account that runs the pipeline and the gateway.

Landing, truth, the lakehouse and the serving files hold PHI; only the service account may open
them (other people get the gateway). New files are made private by the umask the entry points
set (`private_umask`), and what is already there by `make_private`, which changes modes only at
and below the folder it is given, never above it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """New files and folders of this process: owner only (0600 and 0700)."""
    os.umask(PRIVATE_UMASK)


def make_private(folder: str | Path) -> int:
    """Remove group and other permissions from `folder` and everything below it (symlinks are
    not followed); the number of entries changed."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    changed = 0
    for path in (folder, *folder.rglob("*")):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            path.chmod(mode & 0o700)
            changed += 1
    return changed


def write_private_file(path: Path, data: bytes) -> int:
    """Write `data` to a new file at `path` that only its owner can read (0600, whatever the
    umask); an existing file is replaced, not reused, since its mode may be wider. Bytes
    written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    return len(data)


def create_private_file_once(path: Path, data: bytes) -> bytes:
    """Publish `data` at `path` (0600) unless a file is already there; the bytes that are there
    afterwards. The file appears whole: written beside it first and hard-linked into place, so a
    process racing to create it never reads a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.draft")
    write_private_file(draft, data)
    try:
        os.link(draft, path)
    except FileExistsError:  # another process published first: its bytes win
        return path.read_bytes()
    finally:
        draft.unlink()
    return data
