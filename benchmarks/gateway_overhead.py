"""Governed gateway overhead: the same typical query run directly on DuckDB, via the gateway
in process, and via the gateway service (Arrow Flight on localhost, a token per client), alone
and with 16 concurrent clients — on an idle lakehouse and while the main job materializes it.

Usage: python benchmarks/gateway_overhead.py [--patients 2000] [--repeats 30]
Prints medians (ms; p95 for the service) and ratios to the direct query, measured in the same run.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from measure import peak_mib

QUERY = (
    "SELECT f.stage_group, f.histology, count(*) AS patients, avg(o.value) AS mean_hemoglobin "
    "FROM gold.clinical_features f JOIN silver.observations o USING (research_key) "
    "WHERE o.loinc_code = '718-7' GROUP BY ALL ORDER BY ALL"
)


def _times_ms(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _median_ms(fn, repeats: int) -> float:
    return statistics.median(_times_ms(fn, repeats))


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20)[-1]


def _service(db: str, data: Path):
    """The gateway service as users start it, on a free port: (process, location, token store)."""
    from multimodal_assets.lib.governance.service import start_service
    from multimodal_assets.lib.governance.tokens import TokenStore

    server, location = start_service(db, data / "service")
    return server, location, TokenStore(data / "service" / "tokens.json")


def _concurrent(location: str, token: str, clients: int, each: int) -> float:
    """Requests per second of `clients` threads with a Flight client each, `each` requests."""
    from concurrent.futures import ThreadPoolExecutor

    from multimodal_assets.lib.governance.client import GatewayClient

    def client_run(_):
        client = GatewayClient(location, token)
        for _ in range(each):
            client.query(QUERY, "researcher")
        client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, range(clients)))
    return clients * each / (time.perf_counter() - start)


def _round_trip(location: str, token: str):
    """A call that reaches the service and its authentication but no request: the network
    and Flight floor of every request."""
    import pyarrow as pa
    import pyarrow.flight as flight

    client = flight.FlightClient(location)
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])

    def call():
        try:
            client.list_actions(options)
        except pa.ArrowNotImplementedError:  # the server lists no actions: it answered
            pass

    return call


def _served(location: str, token: str, repeats: int) -> tuple[list[float], float]:
    """Latencies (ms) of one client's governed queries, and 16 clients' requests per second."""
    from multimodal_assets.lib.governance.client import GatewayClient

    client = GatewayClient(location, token)
    served = _times_ms(lambda: client.query(QUERY, "researcher"), repeats)
    client.close()
    return served, _concurrent(location, token, clients=16, each=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--data",
        type=Path,
        help="a data folder an earlier run of this benchmark left (reused; its audit log keeps "
        "the earlier runs' commits, which slows each append a little)",
    )
    args = parser.parse_args()
    data = args.data or Path(tempfile.mkdtemp(prefix="mm-gateway-bench-"))
    os.environ["MM_DATA_DIR"] = str(data)
    print(f"data folder: {data} (reuse with --data)", flush=True)

    import dagster as dg

    from multimodal_assets.definitions import defs
    from multimodal_assets.lib.governance.gateway import plan_query, run_query
    from multimodal_assets.lib.governance.policy import load_policy
    from multimodal_assets.lib.platform import config, warehouse
    from multimodal_assets.lib.synthetic.writer import generate

    if args.data is None:
        generate(args.patients, 1, data / "landing", progress=False)
        from multimodal_assets.defs.deliveries import register_delivery_batches

        instance = dg.DagsterInstance.ephemeral()
        job = defs.resolve_implicit_global_asset_job_def()
        job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            tags=register_delivery_batches(instance),
        )
    args.patients = json.loads((data / "truth" / "generator.json").read_text())["patients"]
    db = config.lakehouse_root()

    opened = warehouse.connect(db, read_only=True)
    conn = opened.__enter__()
    direct_open = _median_ms(lambda: conn.sql(QUERY).to_arrow_table(), args.repeats)
    policy = load_policy()
    plan = plan_query(QUERY, policy, "carol", "data_engineer", conn)
    rewritten_open = _median_ms(lambda: conn.sql(plan.sql).to_arrow_table(), args.repeats)
    researcher_plan = plan_query(QUERY, policy, "alice", "researcher", conn)
    masked_open = _median_ms(lambda: conn.sql(researcher_plan.sql).to_arrow_table(), args.repeats)
    opened.__exit__(None, None, None)

    def direct_with_connect():
        with warehouse.connect(db, read_only=True) as c:
            c.sql(QUERY).to_arrow_table()

    direct_connect = _median_ms(direct_with_connect, args.repeats)
    gateway_engineer = _median_ms(
        lambda: run_query(QUERY, user="carol", role="data_engineer", root=db), args.repeats
    )
    gateway_researcher = _median_ms(
        lambda: run_query(QUERY, user="alice", role="researcher", root=db), args.repeats
    )

    import subprocess
    import sys

    server, location, tokens = _service(db, data)
    try:
        token = tokens.create("alice")
        round_trip = _median_ms(_round_trip(location, token), args.repeats)
        served, throughput = _served(location, token, args.repeats)
        # The main job again over the same landing (bronze finds nothing new; every silver,
        # gold and governance table is rebuilt and committed) while the service answers.
        started = time.perf_counter()
        job = subprocess.Popen(
            [sys.executable, "-m", "multimodal_assets.cli.run"],
            env={**os.environ, "DAGSTER_HOME": str(data / "dagster_home")},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Past start-up, into the steps that write, and past the rate limit's minute (the
        # policy allows 120 requests a minute per user; the idle measurement made ~110).
        time.sleep(60)
        served_busy, throughput_busy = _served(location, token, args.repeats)
        busy_still = job.poll() is None
        job.wait()
        job_seconds = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()

    print(f"cohort: {args.patients} patients; query: join + aggregate over observations")
    print(f"direct, open connection              {direct_open:8.2f} ms")
    print(f"direct, connect per query            {direct_connect:8.2f} ms")
    print(f"rewritten SQL only (data_engineer)   {rewritten_open:8.2f} ms")
    print(f"rewritten SQL only (researcher)      {masked_open:8.2f} ms  (filters + masks)")
    print(f"gateway, data_engineer (full)        {gateway_engineer:8.2f} ms")
    print(f"gateway, researcher (full)           {gateway_researcher:8.2f} ms")
    print(f"ratio gateway/direct-connect, researcher: {gateway_researcher / direct_connect:.2f}x")
    print(f"ratio gateway/direct-open, researcher:    {gateway_researcher / direct_open:.2f}x")
    print(
        f"service (Flight, researcher)         {statistics.median(served):8.2f} ms p50, "
        f"{_p95(served):.2f} ms p95; ratio to direct-open {statistics.median(served) / direct_open:.2f}x"
    )
    print(f"service, 16 concurrent clients       {throughput:8.1f} requests/s")
    print(f"service round trip (no request)      {round_trip:8.2f} ms  (network + Flight + auth)")
    goal = 1.2 * direct_open + round_trip
    print(
        f"goal <= 1.2 x direct-open + round trip = {goal:.2f} ms: "
        f"{'met' if statistics.median(served) <= goal else 'MISSED'}"
    )
    print(
        f"while the main job materializes ({job_seconds:.0f} s; "
        f"{'still running at the end' if busy_still else 'finished during the measurement'}):"
    )
    print(
        f"  service p50 {statistics.median(served_busy):8.2f} ms, p95 {_p95(served_busy):.2f} ms; "
        f"16 clients {throughput_busy:.1f} requests/s"
    )
    peak = peak_mib()
    print(f"peak memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
