"""What the most expensive *admitted* query does to everyone else: `{ me { id } }` latency, quiet
and while N clients send that query in a loop.

    PYTHONPATH=. .venv/bin/python bench/abuse.py [--clients 4] [--seconds 10] [--max-seconds 240]

Pantheon runs as `pantheon serve` (a real uvicorn process on 127.0.0.1, embedded SQLite in a
temporary data dir, the offline scripted provider), so the server has its own GIL and event loop.
The bench creates two users through the demo admin (whose token the first start logs), gives the
abuser 20 ROUNDTABLE sessions of 20 turns each, then measures, with one request at a time from the
victim:

1. quiet: `{ me { id } }` for `--seconds`;
2. abuse: the same while `--clients` clients loop the heaviest page the default cost limit admits
   (20 sessions x 20 turns with their messages: cost printed below, limit 5000).

It prints p50/p99 for both and their ratio (the goal: abuse p99 within 2x of quiet p99), and the
heavy query's own latency and rate. The cost limit bounds how heavy one request can be; it does not
bound how many arrive at once (that is the rate limiter's job), so the ratio measures what one
admitted request costs the event loop. Targets 127.0.0.1 only; the whole run is bounded by
`--max-seconds`. Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # never anything else
TOKEN = re.compile(r"pnt_[A-Za-z0-9_-]{20,}")
SESSIONS = 20
TURNS = 20
PING = "{ me { id } }"
# The admitted page of docs/query_cost.md, plus two turn fields: as heavy as the default allows.
HEAVY = """{ rateLimit { cost maxCost } sessions(first: 20) { edges { node {
  turns(first: 20) { edges { node { userMessage assistantOutput messages { content } } } } }
} } }"""
CREATE_USER = """mutation($handle: String!) {
  createUser(input: {handle: $handle}) { token } }"""
CREATE_SESSION = "mutation { createSession(input: {defaultMode: ROUNDTABLE}) { id } }"
RUN = """mutation($input: RunTurnInput!) { runTurn(input: $input) { status } }"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def pantheon_server(data_dir: Path) -> Iterator[tuple[str, str]]:
    """`pantheon serve` on a free 127.0.0.1 port; yields (url, demo admin token)."""
    port = free_port()
    log_path = data_dir / "server.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PANTHEON_DATABASE_URL", "PANTHEON_REDIS_URL")
    }
    env.update(
        PANTHEON_DATA_DIR=str(data_dir / "data"),
        PANTHEON_MAX_RUNNING_TURNS_PER_USER=str(SESSIONS),
        # The request limit would refuse the victim's own loop (hundreds a second) and cap the
        # abusers, and seeding's 400 turns exceed the turn and token limits: raised, so the
        # figures measure what one admitted heavy query costs the loop.
        PANTHEON_RATE_LIMIT_REQUESTS_PER_MINUTE="100000000",
        PANTHEON_RATE_LIMIT_TURNS_PER_MINUTE="100000000",
        PANTHEON_RATE_LIMIT_TOKENS_PER_MINUTE="100000000000",  # seeding runs 400 turns at once
        PANTHEON_LOG_LEVEL="WARNING",
    )
    pantheon = ROOT / ".venv" / "bin" / "pantheon"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(pantheon), "serve", "--host", HOST, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"pantheon serve exited:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v1/health", timeout=1).is_success:
                    break
            time.sleep(0.3)
        else:
            raise SystemExit(f"pantheon serve never became healthy:\n{log_path.read_text()}")
        found = TOKEN.search(log_path.read_text())
        if found is None:
            raise SystemExit("the server log shows no demo admin token")
        yield f"{url}/graphql", found.group()
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Client:
    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def __call__(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=self.headers
        )
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(f"{query[:40]}...: {body['errors']}")
        return body["data"]


async def seed(admin: Client, http: httpx.AsyncClient, url: str) -> tuple[Client, Client]:
    abuser_token = (await admin(CREATE_USER, {"handle": "abuser"}))["createUser"]["token"]
    victim_token = (await admin(CREATE_USER, {"handle": "victim"}))["createUser"]["token"]
    abuser = Client(http, url, abuser_token)

    async def fill(index: int) -> None:
        session = (await abuser(CREATE_SESSION))["createSession"]["id"]
        for turn in range(TURNS):
            message = f"session {index}, turn {turn}: what should we build next, and why?"
            await abuser(RUN, {"input": {"sessionId": session, "message": message}})

    started = time.perf_counter()
    await asyncio.gather(*(fill(index) for index in range(SESSIONS)))
    print(f"seeded {SESSIONS} sessions x {TURNS} turns in {time.perf_counter() - started:.1f} s")
    return abuser, Client(http, url, victim_token)


async def pings(victim: Client, seconds: float) -> list[float]:
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        await victim(PING)
        latencies.append(time.perf_counter() - started)
    return latencies


async def hammer(abuser: Client, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await abuser(HEAVY)
        latencies.append(time.perf_counter() - started)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} n={len(values):>6}  p50={percentile(values, 0.5) * 1000:8.1f} ms  "
        f"p99={percentile(values, 0.99) * 1000:8.1f} ms  "
        f"mean={statistics.mean(values) * 1000:8.1f} ms"
    )


async def measure(url: str, admin_token: str, clients: int, seconds: float) -> None:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        admin = Client(http, url, admin_token)
        abuser, victim = await seed(admin, http, url)
        heavy = (await abuser(HEAVY))["rateLimit"]
        print(f"heavy query: cost {heavy['cost']} of maxCost {heavy['maxCost']}")

        await pings(victim, 1.0)  # warm-up
        quiet = await pings(victim, seconds)

        stop = asyncio.Event()
        heavy_latencies: list[float] = []
        workers = [
            asyncio.create_task(hammer(abuser, stop, heavy_latencies)) for _ in range(clients)
        ]
        await asyncio.sleep(1.0)  # let the abuse reach its steady state
        heavy_latencies.clear()
        loud = await pings(victim, seconds)
        stop.set()
        await asyncio.gather(*workers)

    print()
    print(line("me { id }, quiet", quiet))
    print(line(f"me {{ id }}, {clients} clients abusing", loud))
    print(line("the heavy query itself", heavy_latencies))
    ratio = percentile(loud, 0.99) / percentile(quiet, 0.99)
    print(f"heavy queries served: {len(heavy_latencies) / seconds:.1f}/s")
    print(f"p99 abuse / p99 quiet = {ratio:.1f}x (goal: <= 2x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="clients looping the heavy query")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="bound of the whole run")
    args = parser.parse_args()

    async def bounded(url: str, token: str) -> None:
        async with asyncio.timeout(args.max_seconds):
            await measure(url, token, args.clients, args.seconds)

    with (
        tempfile.TemporaryDirectory(prefix="pantheon-abuse-") as tmp,
        pantheon_server(Path(tmp)) as (url, token),
    ):
        try:
            asyncio.run(bounded(url, token))
        except TimeoutError:
            sys.exit(f"stopped: the run took longer than --max-seconds={args.max_seconds:g}")


if __name__ == "__main__":
    main()
