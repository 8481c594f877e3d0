"""The gateway as a service: one long-lived Arrow Flight server that authenticates every call
and answers governed requests (queries, similar patients or series, lineage, tumor-board
packets, a role's serving file) from one read connection it keeps current.

Identity comes from the bearer token of the call (`authorization: Bearer mma_…`), never from
the request: the request names only the role to act in, which the policy must give the token's
user. A call without a valid token is refused before any request is read, and audited (without
the token). Results are Arrow: a query's rows as they are; a similarity or lineage answer as a
JSON document in the schema metadata (`document`) of an empty table.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight

from ..platform import config
from . import audit
from .policy import Denied, Policy, load_policy
from .tokens import TokenStore, Unauthenticated

DOCUMENT_KEY = b"document"
# Each request kind and the action its audit rows name.
REQUESTS = {
    "query": "query",
    "similar_patients": "patient_similarity",
    "similar_series": "similarity_search",
    "lineage": "lineage",
    "tumor_board_packet": "tumor_board_packet",
    "serving_file": "export",
}
# A serving file travels as binary chunks of this size (one Arrow row each).
SERVING_CHUNK_BYTES = 4 << 20


class _Identity(flight.ServerMiddleware):
    def __init__(self, user: str, token_id: str):
        self.user, self.token_id = user, token_id


class _Authenticate(flight.ServerMiddlewareFactory):
    """Checks the bearer token of every call; refuses and audits a missing or bad one."""

    def __init__(self, tokens: TokenStore, root: str):
        super().__init__()
        self.tokens, self.root = tokens, root

    def start_call(self, info, headers):
        values = headers.get("authorization") or []
        scheme, _, token = (values[0] if values else "").partition(" ")
        try:
            if values and scheme.lower() != "bearer":
                raise Unauthenticated("credential is not a bearer token")
            user, token_id = self.tokens.authenticate(token.strip() or None)
        except Unauthenticated as failed:
            audit.append(
                self.root,
                audit.AuditEvent(action="authenticate", decision="deny", reason=failed.reason),
            )
            raise flight.FlightUnauthenticatedError(failed.reason) from None
        return _Identity(user, token_id)


def _document(value) -> pa.Table:
    return pa.table({}).replace_schema_metadata({DOCUMENT_KEY: json.dumps(value, default=str)})


class GatewayServer(flight.FlightServerBase):
    """Serves governed requests for authenticated users, with one policy loaded at start."""

    def __init__(self, location: str, root: str, tokens: TokenStore, policy: Policy | None = None):
        super().__init__(location, middleware={"identity": _Authenticate(tokens, str(root))})
        self.root = str(root)
        self.policy = policy or load_policy()
        from .gateway import share_reader

        share_reader(self.root)  # one read connection for every request, kept current
        self._recent: dict[str, deque] = defaultdict(deque)  # user → times of recent requests
        self._recent_lock = threading.Lock()

    def _within_rate(self, user: str) -> bool:
        """Whether `user` has made fewer than the policy's requests in the last minute."""
        now = time.monotonic()
        with self._recent_lock:
            recent = self._recent[user]
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.policy.limits.requests_per_minute:
                return False
            recent.append(now)
            return True

    def do_get(self, context, ticket):
        identity = context.get_middleware("identity")
        try:
            request = json.loads(ticket.ticket)
            if not isinstance(request, dict) or request.get("request") not in REQUESTS:
                raise Denied(
                    f"a request is a JSON object whose 'request' is one of {list(REQUESTS)}"
                )
            if not self._within_rate(identity.user):
                reason = f"more than {self.policy.limits.requests_per_minute} requests in a minute"
                audit.append(
                    self.root,
                    audit.AuditEvent(
                        action=REQUESTS[request["request"]],
                        decision="deny",
                        user_name=identity.user,
                        role=str(request.get("role", "")),
                        reason=reason,
                    ),
                )
                raise Denied(reason)
            table = self._answer(identity.user, request)
        except Denied as denied:
            # Refusals reach the client as a clear reason (audited by the gateway already).
            raise flight.FlightServerError(f"denied: {denied.reason}") from None
        except (ValueError, TypeError, KeyError):
            raise flight.FlightServerError("denied: malformed request") from None
        return flight.RecordBatchStream(table)

    def _answer(self, user: str, request: dict) -> pa.Table:
        role = str(request.get("role", ""))
        common = {"user": user, "role": role, "root": self.root, "policy": self.policy}
        kind = request["request"]
        if kind == "query":
            from .gateway import run_query

            as_of = {str(t): int(v) for t, v in (request.get("as_of") or {}).items()}
            return run_query(str(request["sql"]), as_of=as_of or None, **common).table
        if kind == "similar_patients":
            from multimodal_assets.lib.oncology.search import similar_patients

            found = similar_patients(
                research_key=str(request["patient"]),
                k=int(request.get("k", 10)),
                modalities=request.get("modalities"),
                **common,
            )
            return _document(asdict(found))
        if kind == "similar_series":
            from multimodal_assets.lib.ml.similarity import similar_cases

            return similar_cases(
                series_uid=str(request["series"]), k=int(request.get("k", 10)), **common
            )
        if kind == "tumor_board_packet":
            from multimodal_assets.lib.oncology.meeting import open_packet

            path = open_packet(
                meeting=str(request["meeting"]),
                research_key=str(request["patient"]),
                data_dir=config.data_dir(),
                **common,
            )
            return pa.table({"html": [path.read_text()]})
        if kind == "serving_file":
            from .serving import export_serving_file

            return export_serving_file(
                data_dir=config.data_dir(), chunk_bytes=SERVING_CHUNK_BYTES, **common
            )
        from .lineage import governed_lineage

        found = governed_lineage(
            str(request["kind"]),
            str(request["target"]),
            research_key=request.get("research_key"),
            **common,
        )
        return _document(asdict(found) if request["kind"] == "value" else found)


def serve(location: str, root: str, service_dir: Path) -> None:
    """Run the gateway at `location` until SIGTERM or SIGINT; tokens from `service_dir`."""
    import os
    import signal

    server = GatewayServer(location, root, TokenStore(service_dir / "tokens.json"))
    stop = threading.Event()
    # Our own handlers, not Flight's serve(): its graceful shutdown waited for ever on a call
    # that never finished (seen with 16 concurrent clients), and the process ignored SIGTERM.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # The location as clients reach it: port 0 asks for a free port, which the server knows.
    host = location.split("://", 1)[-1].rsplit(":", 1)[0]
    print(f"gateway serving {root} at grpc://{host}:{server.port}", flush=True)
    while not stop.wait(1.0):
        pass
    # Calls in flight get ten seconds to finish; then the process ends regardless.
    deadline = threading.Timer(10, os._exit, args=(0,))
    deadline.daemon = True
    deadline.start()
    server.shutdown()


def start_service(lakehouse: str | Path, service_dir: Path) -> tuple[subprocess.Popen, str]:
    """`python -m multimodal_assets.serve` over `lakehouse` with its tokens in `service_dir`, on
    a free localhost port, for tests and benchmarks; (the process, the location it serves at)."""
    import os
    import sys

    env = {
        **os.environ,
        "MM_LAKEHOUSE": str(lakehouse),
        "MM_SERVICE_DIR": str(service_dir),
        "MM_GATEWAY": "grpc://127.0.0.1:0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "multimodal_assets.serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = process.stdout.readline()
    if " at " not in line:
        process.kill()
        raise RuntimeError(f"the gateway service did not start: {line.strip()}")
    return process, line.rsplit(" at ", 1)[1].strip()
