"""The gateway service's client: the command lines' (and any script's) way to governed data.

The credential is the token from MM_TOKEN, or else from the token file (MM_TOKEN_FILE, default
~/.config/multimodal_assets/token), which must be private to its owner (mode 0600): a token
others can read is refused before it is sent.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pyarrow as pa

from ..platform.permissions import write_private_file
from .policy import Denied
from .service import DOCUMENT_KEY

TOKEN_ENV = "MM_TOKEN"
TOKEN_FILE_ENV = "MM_TOKEN_FILE"


def token_file() -> Path:
    default = Path.home() / ".config" / "multimodal_assets" / "token"
    return Path(os.environ.get(TOKEN_FILE_ENV) or default)


def client_token() -> str:
    """The caller's token; Denied with what to do when there is none usable."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    path = token_file()
    if not path.exists():
        raise Denied(
            f"no credential: set {TOKEN_ENV} or put the token an administrator issued you "
            f"(`mma token create`) in {path} with mode 0600"
        )
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise Denied(f"{path} is readable by others: chmod 600 it (and ask for a new token)")
    return path.read_text().strip()


class GatewayClient:
    """Governed requests to the gateway service at `location` (grpc://host:port)."""

    def __init__(self, location: str, token: str):
        import pyarrow.flight as flight

        self._flight = flight
        self._client = flight.FlightClient(location)
        self._options = flight.FlightCallOptions(
            headers=[(b"authorization", f"Bearer {token}".encode())]
        )

    def _get(self, request: dict) -> pa.Table:
        flight = self._flight
        ticket = flight.Ticket(json.dumps(request).encode())
        try:
            return self._client.do_get(ticket, self._options).read_all()
        except flight.FlightUnauthenticatedError as err:
            raise Denied(f"not authenticated: {_message(err)}") from None
        except flight.FlightUnavailableError:
            raise Denied(
                "the gateway service is not reachable (python -m multimodal_assets.serve)"
            ) from None
        except flight.FlightError as err:
            raise Denied(_message(err).removeprefix("denied: ")) from None

    def _document(self, request: dict):
        return json.loads(self._get(request).schema.metadata[DOCUMENT_KEY])

    def query(self, sql: str, role: str, as_of: dict[str, int] | None = None) -> pa.Table:
        return self._get({"request": "query", "role": role, "sql": sql, "as_of": as_of or {}})

    def similar_patients(self, role: str, patient: str, k: int, modalities=None) -> dict:
        return self._document(
            {
                "request": "similar_patients",
                "role": role,
                "patient": patient,
                "k": k,
                "modalities": modalities,
            }
        )

    def similar_series(self, role: str, series: str, k: int) -> pa.Table:
        return self._get({"request": "similar_series", "role": role, "series": series, "k": k})

    def lineage(self, role: str, kind: str, target: str, research_key: str | None = None):
        return self._document(
            {
                "request": "lineage",
                "role": role,
                "kind": kind,
                "target": target,
                "research_key": research_key,
            }
        )

    def tumor_board_packet(self, role: str, meeting: str, patient: str) -> str:
        """The packet's HTML, as the role may see it."""
        request = {"request": "tumor_board_packet", "role": role, "meeting": meeting}
        return self._get({**request, "patient": patient}).column("html")[0].as_py()

    def serving_file(self, role: str, out: Path) -> int:
        """Write the role's serving file to `out` (mode 0600); its size in bytes."""
        chunks = self._get({"request": "serving_file", "role": role}).column("chunk")
        return write_private_file(out, b"".join(c.as_py() for c in chunks))

    def close(self) -> None:
        self._client.close()


def _message(err: Exception) -> str:
    """The server's reason, without gRPC's detail suffix."""
    text = str(err)
    return text.split(". Detail:", 1)[0].strip()
