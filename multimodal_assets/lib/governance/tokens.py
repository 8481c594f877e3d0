"""Bearer tokens for the gateway service: issued by an admin, shown once, stored hashed.

A token is `mma_<id>_<secret>`: the id finds the record, the secret (32 random bytes) is checked
against its salted scrypt hash, so the store reveals nothing that authenticates. Records expire
and can be revoked; the store is one JSON file with mode 0600 in the service's own folder, read
again when it changes (a revocation takes effect on the next request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

PREFIX = "mma_"
DEFAULT_DAYS = 30
# scrypt at n=2**14, r=8: ~20 ms and 16 MiB a check (the 2026 OWASP minimum for interactive logins
# is n=2**17; a token holds 256 random bits, so a slow hash guards nothing a guess could find).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Unauthenticated(Exception):
    """No valid credential; the reason never quotes the token."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    user: str
    created_at: str
    expires_at: str
    revoked_at: str | None


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


def _now() -> datetime:
    return datetime.now(UTC)


class TokenStore:
    """The tokens file of one service; every change rewrites it atomically with mode 0600."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded: tuple[int, dict] | None = None  # (mtime_ns, records)
        # Secrets already verified with scrypt, by token id: a keyed digest under a key that
        # lives only in this process's memory, and the stored hash it was verified against. A
        # client sends its token with every call; scrypt each time would cost ~20 ms a call.
        self._verified_key = os.urandom(32)
        self._verified: dict[str, tuple[str, str]] = {}

    def _records(self) -> dict:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._loaded is None or self._loaded[0] != stamp:
            self._loaded = (stamp, json.loads(self.path.read_text()))
        return self._loaded[1]

    def _write(self, records: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = self.path.with_suffix(".tmp")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump(records, out, indent=1, sort_keys=True)
        os.replace(staging, self.path)
        self._loaded = None

    def create(self, user: str, days: int = DEFAULT_DAYS) -> str:
        """A new token for `user`, valid `days` days; the only time its text exists."""
        if days <= 0:
            raise ValueError("a token must be valid for at least one day")
        token_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), os.urandom(16)
        now = _now()
        with self._lock:
            records = dict(self._records())
            records[token_id] = {
                "user": user,
                "salt": salt.hex(),
                "hash": _digest(secret, salt),
                "created_at": now.isoformat(timespec="seconds"),
                "expires_at": (now + timedelta(days=days)).isoformat(timespec="seconds"),
                "revoked_at": None,
            }
            self._write(records)
        return f"{PREFIX}{token_id}_{secret}"

    def revoke(self, token_id: str) -> bool:
        """Revoke one token by id; False when there is no such token."""
        with self._lock:
            records = dict(self._records())
            if token_id not in records:
                return False
            records[token_id] = {**records[token_id], "revoked_at": _now().isoformat()}
            self._write(records)
        return True

    def list(self) -> list[TokenRecord]:
        return [
            TokenRecord(tid, r["user"], r["created_at"], r["expires_at"], r["revoked_at"])
            for tid, r in sorted(self._records().items())
        ]

    def authenticate(self, token: str | None) -> tuple[str, str]:
        """(user, token id) of a valid token; Unauthenticated (reason without the token) else."""
        if not token:
            raise Unauthenticated("no credential presented")
        body = token[len(PREFIX) :] if token.startswith(PREFIX) else ""
        token_id, _, secret = body.partition("_")
        record = self._records().get(token_id) if secret else None
        if record is None:
            raise Unauthenticated("unknown token")
        quick = hmac.new(self._verified_key, secret.encode(), hashlib.sha256).hexdigest()
        known = self._verified.get(token_id)
        if not (known and hmac.compare_digest(known[0], quick) and known[1] == record["hash"]):
            expected = _digest(secret, bytes.fromhex(record["salt"]))
            if not hmac.compare_digest(expected, record["hash"]):
                raise Unauthenticated("unknown token")
            self._verified[token_id] = (quick, record["hash"])
        if record["revoked_at"]:
            raise Unauthenticated(f"token {token_id} was revoked")
        if datetime.fromisoformat(record["expires_at"]) <= _now():
            raise Unauthenticated(f"token {token_id} expired")
        return record["user"], token_id
