"""Research identifiers: a keyed hash (HMAC-SHA256) of the MRN, stable across runs and modalities."""

import hashlib
import hmac
import logging
import os
import re

KEY_ENV = "MM_PSEUDONYM_KEY"
_DEV_KEY = "multimodal-assets-development-key-do-not-use-in-production"
_log = logging.getLogger(__name__)
_warned = False


def pseudonym_key() -> bytes:
    """The secret from MM_PSEUDONYM_KEY; the development default is announced loudly, once.

    Read by entry points only (the code location's resources, the CLI, the gateway, tests);
    every function below takes the key as an argument."""
    global _warned
    key = os.environ.get(KEY_ENV)
    if key:
        return key.encode()
    if not _warned:
        _log.warning(
            "%s is not set: research keys use the PUBLIC development key and can be reversed "
            "by anyone who has the MRNs. Set a secret key before loading real data.",
            KEY_ENV,
        )
        _warned = True
    return _DEV_KEY.encode()


# What `research_key` returns: requests naming a patient are checked against it.
RESEARCH_KEY_PATTERN = re.compile(r"rk_[0-9a-f]{20}")


def research_key(identifier: str, key: bytes) -> str:
    """Keyed pseudonym of a patient identifier (20 hex chars, 80 bits)."""
    digest = hmac.new(key, identifier.encode(), hashlib.sha256)
    return "rk_" + digest.hexdigest()[:20]


def date_shift_days(key_of_patient: str, key: bytes) -> int:
    """A per-patient shift of 1 to 182 days either way (never 0), keyed so it cannot be
    recomputed without the key."""
    digest = hmac.new(key, b"date-shift:" + key_of_patient.encode(), hashlib.sha256).digest()
    offset = int.from_bytes(digest[:4], "big") % 364
    return offset - 182 if offset < 182 else offset - 181
