"""The gateway as a service: tokens, the Arrow Flight server started as users start it, and the
command lines as its clients. Identity comes from the token; every refusal is audited."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from multimodal_assets.lib.governance.client import GatewayClient, client_token
from multimodal_assets.lib.governance.gateway import run_query
from multimodal_assets.lib.governance.policy import Denied
from multimodal_assets.lib.governance.service import start_service
from multimodal_assets.lib.governance.serving import serving_path
from multimodal_assets.lib.governance.tokens import TokenStore, Unauthenticated
from multimodal_assets.lib.oncology.meeting import meetings_dir

from .conftest import audit_rows

MMA = Path(sys.executable).with_name("mma")
CONSENTED = "SELECT research_key, age_at_index FROM gold.clinical_features ORDER BY research_key"


def test_a_token_is_stored_hashed_private_and_checked(tmp_path):
    store = TokenStore(tmp_path / "service" / "tokens.json")
    token = store.create("alice", days=1)
    assert store.authenticate(token)[0] == "alice"
    text = (tmp_path / "service" / "tokens.json").read_text()
    secret = token.rsplit("_", 1)[1]
    assert secret not in text and "alice" in text  # only the salted hash is kept
    assert (tmp_path / "service" / "tokens.json").stat().st_mode & 0o777 == 0o600
    token_id = token.split("_")[1]
    for forged in (None, "", "mma_", token[:-1] + ("A" if token[-1] != "A" else "B"), "xyz"):
        with pytest.raises(Unauthenticated) as refused:
            store.authenticate(forged)
        assert secret not in refused.value.reason
    assert store.revoke(token_id)
    with pytest.raises(Unauthenticated, match="revoked"):
        store.authenticate(token)


def test_a_verified_token_is_checked_again_when_its_record_changes(tmp_path):
    """Verified secrets are remembered (scrypt once per token), but only for the stored hash
    they were verified against."""
    path = tmp_path / "tokens.json"
    store = TokenStore(path)
    token, other = store.create("alice", days=1), store.create("bob", days=1)
    assert store.authenticate(token) == store.authenticate(token)  # the second from memory
    records = json.loads(path.read_text())
    token_id, other_id = token.split("_")[1], other.split("_")[1]
    records[token_id]["hash"] = records[other_id]["hash"]  # the record no longer matches it
    path.write_text(json.dumps(records))
    with pytest.raises(Unauthenticated, match="unknown token"):
        store.authenticate(token)


def _expire(store_path: Path, token: str) -> None:
    """Move a token's expiry into the past, as time would."""
    records = json.loads(store_path.read_text())
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    records[token.split("_")[1]]["expires_at"] = past
    store_path.write_text(json.dumps(records))


def test_a_token_file_others_can_read_is_not_used(tmp_path, monkeypatch):
    monkeypatch.delenv("MM_TOKEN", raising=False)
    path = tmp_path / "token"
    monkeypatch.setenv("MM_TOKEN_FILE", str(path))
    with pytest.raises(Denied, match="no credential"):
        client_token()
    path.write_text("mma_abc_def\n")
    path.chmod(0o644)
    with pytest.raises(Denied, match="readable by others"):
        client_token()
    path.chmod(0o600)
    assert client_token() == "mma_abc_def"


@pytest.fixture
def gateway(warehouse_copy, tmp_path):
    """The service as `python -m multimodal_assets.serve` starts it, on a free port, over a
    private copy of the lakehouse; (location, token store, lakehouse, server environment)."""
    service = tmp_path / "service"
    server, location = start_service(warehouse_copy, service)
    env = {**os.environ, "MM_LAKEHOUSE": str(warehouse_copy), "MM_GATEWAY": location}
    try:
        yield location, TokenStore(service / "tokens.json"), warehouse_copy, env
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
        # Nothing the server says may carry a token.
        assert "mma_" not in output


def test_the_service_answers_as_the_tokens_user_and_the_same_rows(gateway):
    location, store, lakehouse, _ = gateway
    client = GatewayClient(location, store.create("alice"))
    served = client.query(CONSENTED, "researcher")
    direct = run_query(CONSENTED, user="alice", role="researcher", root=str(lakehouse)).table
    assert served.num_rows == direct.num_rows > 0
    assert served.equals(direct)
    # The role must be one the token's user holds: alice is no data engineer.
    with pytest.raises(Denied, match="data_engineer"):
        client.query("SELECT mrn FROM silver.patients", "data_engineer")
    log = audit_rows(lakehouse)
    assert list(log.user_name.tail(3)) == ["alice", "alice", "alice"]
    assert list(log.decision.tail(2)) == ["allow", "deny"]


def test_missing_forged_expired_and_revoked_tokens_get_nothing_and_are_audited(gateway):
    location, store, lakehouse, _ = gateway
    before = len(audit_rows(lakehouse))
    expired, revoked, good = store.create("carol"), store.create("carol"), store.create("carol")
    _expire(store.path, expired)
    store.revoke(revoked.split("_")[1])
    forged = good[:-2] + ("xx" if not good.endswith("xx") else "yy")
    attempts = {
        "": "no credential",
        forged: "unknown token",
        expired: "expired",
        revoked: "revoked",
        "mma_" + "0" * 12 + "_guess": "unknown token",
    }
    for token, reason in attempts.items():
        client = GatewayClient(location, token)
        with pytest.raises(Denied, match=reason):
            client.query("SELECT mrn FROM silver.patients", "data_engineer")
    log = audit_rows(lakehouse).iloc[before:]
    assert list(log.action) == ["authenticate"] * len(attempts)
    assert set(log.decision) == {"deny"} and log.user_name.isna().all()
    assert not log.astype(str).apply(lambda c: c.str.contains("mma_")).any().any()
    # The genuine token still works.
    assert GatewayClient(location, good).query(
        "SELECT count(*) FROM silver.patients", "data_engineer"
    )


def test_the_cli_is_a_client_and_a_named_user_alone_gets_nothing(gateway, tmp_path):
    location, store, _, env = gateway
    env = {**env, "MM_TOKEN_FILE": str(tmp_path / "none")}
    env.pop("MM_TOKEN", None)
    sql = "SELECT mrn FROM silver.patients LIMIT 3"
    named = subprocess.run(
        [MMA, "query", "--role", "data_engineer", "--user", "carol", sql],
        env=env,
        capture_output=True,
        text=True,
    )
    assert named.returncode == 2 and "MRN" not in named.stdout and named.stdout == ""
    anonymous = subprocess.run(
        [MMA, "query", "--role", "data_engineer", sql], env=env, capture_output=True, text=True
    )
    assert anonymous.returncode == 2 and "no credential" in anonymous.stderr
    env["MM_TOKEN"] = store.create("carol")
    served = subprocess.run(
        [MMA, "query", "--role", "data_engineer", sql], env=env, capture_output=True, text=True
    )
    assert served.returncode == 0, served.stderr
    assert "(3 rows)" in served.stdout


def test_similar_patients_through_the_service_match_the_in_process_answer(gateway, pipeline):
    from multimodal_assets.lib.oncology.search import similar_patients

    location, store, lakehouse, _ = gateway
    with pipeline.connect() as conn:
        (key,) = conn.execute(
            "SELECT research_key FROM gold.patient_profiles JOIN silver.patients "
            "USING (research_key) WHERE research_consent AND NOT consent_opt_out "
            "ORDER BY 1 LIMIT 1"
        ).fetchone()
    served = GatewayClient(location, store.create("alice")).similar_patients("researcher", key, 5)
    direct = similar_patients(
        user="alice", role="researcher", research_key=key, k=5, root=str(lakehouse)
    )
    assert [h["research_key"] for h in served["hits"]] == [h["research_key"] for h in direct.hits]
    assert served["hidden"] == direct.hidden


def _policy_with(**limits):
    import dataclasses

    from multimodal_assets.lib.governance.policy import load_policy

    policy = load_policy()
    return dataclasses.replace(policy, limits=dataclasses.replace(policy.limits, **limits))


def test_a_result_over_the_row_cap_is_refused_and_audited(warehouse_copy):
    policy = _policy_with(max_rows=5)
    sql = "SELECT research_key FROM gold.clinical_features"
    with pytest.raises(Denied, match="more than 5 rows"):
        run_query(sql, user="carol", role="data_engineer", root=warehouse_copy, policy=policy)
    assert audit_rows(warehouse_copy).iloc[-1].decision == "deny"
    small = run_query(
        sql + " LIMIT 5", user="carol", role="data_engineer", root=warehouse_copy, policy=policy
    )
    assert small.table.num_rows == 5


def test_a_query_past_the_time_limit_is_interrupted_and_audited(warehouse_copy):
    import time

    policy = _policy_with(query_seconds=0.5)
    slow = (
        "SELECT sum(a.value * b.value * c.value) FROM silver.observations a, "
        "silver.observations b, silver.observations c"
    )
    started = time.monotonic()
    with pytest.raises(Denied, match="0.5 s limit"):
        run_query(slow, user="carol", role="data_engineer", root=warehouse_copy, policy=policy)
    assert time.monotonic() - started < 10
    log = audit_rows(warehouse_copy, received=True)
    assert list(log.decision.tail(2)) == ["received", "deny"]


def test_a_user_over_the_rate_limit_is_refused_and_audited(warehouse_copy, tmp_path):
    import threading

    from multimodal_assets.lib.governance.service import GatewayServer

    store = TokenStore(tmp_path / "tokens.json")
    server = GatewayServer(
        "grpc://127.0.0.1:0", str(warehouse_copy), store, _policy_with(requests_per_minute=3)
    )
    threading.Thread(target=server.serve, daemon=True).start()
    try:
        alice = GatewayClient(f"grpc://127.0.0.1:{server.port}", store.create("alice"))
        carol = GatewayClient(f"grpc://127.0.0.1:{server.port}", store.create("carol"))
        for _ in range(3):
            alice.query("SELECT count(*) FROM gold.clinical_features", "researcher")
        with pytest.raises(Denied, match="more than 3 requests in a minute"):
            alice.query("SELECT count(*) FROM gold.clinical_features", "researcher")
        # The limit is per user: another user is served.
        assert carol.query("SELECT count(*) FROM silver.patients", "data_engineer").num_rows == 1
    finally:
        server.shutdown()
    refused = audit_rows(warehouse_copy)
    assert ((refused.user_name == "alice") & (refused.decision == "deny")).sum() == 1


def test_packets_and_serving_files_reach_only_the_roles_that_may_have_them(gateway, tmp_path):
    location, store, lakehouse, env = gateway
    data = Path(os.environ["MM_DATA_DIR"])  # the session pipeline's reports and serving files
    (meeting,) = sorted(p.name for p in meetings_dir(data).iterdir())
    identified = sorted((meetings_dir(data) / meeting / "identified" / "site_a").glob("rk_*.html"))
    packet = identified[0]
    bob, frank = (GatewayClient(location, store.create(u)) for u in ("bob", "frank"))
    assert bob.tumor_board_packet("clinician", meeting, packet.stem) == packet.read_text()
    with pytest.raises(Denied, match="not visible"):
        frank.tumor_board_packet("clinician", meeting, packet.stem)  # another site's patient
    # The command line saves what the service sends to a file only its user can read.
    saved = tmp_path / "packet.html"
    done = subprocess.run(
        [
            MMA,
            "packet",
            "--role",
            "clinician",
            "--meeting",
            meeting,
            "--patient",
            packet.stem,
            "--out",
            str(saved),
        ],
        env={**env, "MM_TOKEN": store.create("bob")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert saved.read_text() == packet.read_text() and saved.stat().st_mode & 0o777 == 0o600

    alice = GatewayClient(location, store.create("alice"))
    size = alice.serving_file("researcher", tmp_path / "researcher.duckdb")
    assert (tmp_path / "researcher.duckdb").read_bytes() == serving_path(
        data, "researcher"
    ).read_bytes()
    assert size > 0 and (tmp_path / "researcher.duckdb").stat().st_mode & 0o777 == 0o600
    with pytest.raises(Denied, match="data_engineer"):
        alice.serving_file("data_engineer", tmp_path / "not_hers.duckdb")
    log = audit_rows(lakehouse)
    assert list(log.action.tail(5)) == [
        "tumor_board_packet",
        "tumor_board_packet",
        "tumor_board_packet",
        "export",
        "export",
    ]
    assert list(log.decision.tail(5)) == ["allow", "deny", "allow", "allow", "deny"]
