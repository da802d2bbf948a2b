"""Pantheon's own time per 3-agent turn, end to end over GraphQL/HTTP, with a fake OpenAI server.

    PYTHONPATH=. python bench/turn_overhead.py [--turns 50] [--concurrency 100] [--delay-ms 200]
        [--rounds 2] [--users 10] [--db-pool-size N] [--db-max-overflow N]
        [--database-url postgres|sqlite|postgresql+asyncpg://...] [--show-sql] [--profile DIR]
    PYTHONPATH=. python bench/turn_overhead.py --otel [--turns 50] [--rounds 2]

Three processes, so none shares another's GIL: Pantheon as a real uvicorn server (built like
`pantheon serve`: `create_app`, uvicorn's own socket and its default loop/parser), the fake
OpenAI server, and this client (httpx). Every turn is ROUNDTABLE on a 3-agent roster (qwen,
deepseek, writer), each agent a streamed call of 16 deltas.

1. Sequential, zero provider delay: `--turns` runTurn calls over 5 sessions, each followed by a
   bare baseline (3 sequential streamed calls with plain httpx to the same fake server), so
   drift hits both. Overhead = turn - bare; its split comes from the fake's arrival times
   (one monotonic clock for all processes on Linux).
2. Concurrent, `--delay-ms` per call (the fake holds the headers that long): `--concurrency`
   turns at once on as many sessions, `--rounds` times; ideal wall = 3 x delay. The same burst
   of bare 3-call sequences shows what the harness itself reaches.

The database: a fresh PostgreSQL database (on $PANTHEON_TEST_DATABASE_URL's server or
127.0.0.1:5432, or beside the URL given) dropped at the end, or `sqlite` for a temporary file.
Server-side figures come from bench-only routes added to the app in its process: CPU time,
SQL statements (`--show-sql` lists one turn's), peak pooled DB connections in use. `--profile
DIR` writes pyinstrument reports (text and .pyisession) of the server for the sequential phase
and the last concurrent round; timings then include the profiler's cost. Not a test; not in CI.

`--otel` measures what tracing costs instead: two Pantheon servers on the same database, one
with tracing off and one exporting over OTLP/HTTP (docs/observability.md) to a local sink
process on 127.0.0.1 (it answers every export 200 and counts them), with the SDK's default
batch delay (5 s), waited out at the end of each window so its exports happen inside it. Each
round runs `--turns` sequential turns on each, interleaved (off, on, off, ...) so both see the
same machine load, and compares the server CPU per turn; the exporter's thread is in the
server's process, so its CPU counts. `OTEL_SDK_DISABLED=true` in this shell turns tracing off
on both servers: the A/A check of the comparison's own bias.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.enums import Role  # noqa: E402
from domain.services import users as user_service  # noqa: E402
from domain.services.catalog import sync_catalog  # noqa: E402
from infra.catalog.loader import load_catalog  # noqa: E402
from infra.db.uow import SqlUnitOfWork  # noqa: E402
from tests import db as testdb  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.turns_support import write_fake_catalog  # noqa: E402

LOCAL_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
ROSTER = ["qwen", "deepseek", "writer"]
ANSWER = " ".join(f"word{i}" for i in range(16))  # 16 streamed deltas per call
SEQ_SESSIONS = 5
WARMUP = 5
POOL_SHARD = 10  # concurrent tasks per client connection pool
CREATE = """mutation($keys: [String!]) {
  createSession(input: {agentKeys: $keys, defaultMode: ROUNDTABLE}) { id } }"""
RUN = """mutation($input: RunTurnInput!) {
  runTurn(input: $input) { id status assistantOutput messages { position status } } }"""
PING = "{ me { id } }"
# --otel: the SDK's default batch delay (OTEL_BSP_SCHEDULE_DELAY), so batches are as large as
# in production; each window waits it out, so its spans are exported inside it.
BATCH_DELAY_MS = 5000


# --- child processes --------------------------------------------------------------------------


def serve_fake() -> None:
    """The fake OpenAI server plus two bench routes: set the default answer, read arrivals."""
    from tests.fakes.openai_script import FakeResponse
    from tests.fakes.openai_server import _json, _read_body

    class BenchFake(FakeOpenAIServer):
        async def _app(self, scope: Any, receive: Any, send: Any) -> None:
            path = scope.get("path", "") if scope["type"] == "http" else ""
            if not path.startswith("/_bench/"):
                await super()._app(scope, receive, send)
                return
            raw = await _read_body(receive)
            if path == "/_bench/default":
                self.reset()
                self.set_default(FakeResponse.from_json(json.loads(raw)))
                await _json(send, 200, {})
            else:
                await _json(send, 200, [[r.model, r.received_at] for r in self.requests()])

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with BenchFake() as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


def serve_sink() -> None:
    """A local OTLP/HTTP endpoint: every POST is answered 200 (an empty
    ExportTraceServiceResponse); `GET /count` returns how many exports and bytes came."""
    counts = {"exports": 0, "bytes": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = dict(h.lower().split(": ", 1) for h in lines[1:] if ": " in h)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if lines[0].startswith("POST"):
                    counts["exports"] += 1
                    counts["bytes"] += len(body)
                    payload, kind = b"", b"application/x-protobuf"
                else:
                    payload, kind = json.dumps(counts).encode(), b"application/json"
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: "
                    + kind
                    + b"\r\ncontent-length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def serve_pantheon() -> None:
    """`pantheon serve` from the environment's settings, plus bench routes: server CPU, SQL
    statements, peak pooled connections in use, and a pyinstrument profiler on demand."""
    import uvicorn
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from graph.app import create_app
    from graph.request_context import RequestIdFilter
    from infra.logging import configure_logging
    from infra.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, record_filter=RequestIdFilter())
    app = create_app(settings, migrate_on_start=False)
    counts = {"statements": 0, "in_use": 0, "peak": 0}
    recent: list[str] = []  # the statements since the last stats call (heads only)
    profiler: list[Any] = []

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            counts["statements"] += 1
            if len(recent) < 1000:
                recent.append(" ".join(statement.split())[:90])

    @event.listens_for(Pool, "checkout")
    def _checkout(*_: Any) -> None:
        counts["in_use"] += 1
        counts["peak"] = max(counts["peak"], counts["in_use"])

    @event.listens_for(Pool, "checkin")
    def _checkin(*_: Any) -> None:
        counts["in_use"] -= 1

    @app.post("/_bench/stats")
    async def stats(request: Request) -> dict[str, Any]:
        pool = request.app.state.database.engine.pool
        out = {
            "cpu": time.process_time(),
            "statements": counts["statements"],
            "peak": counts["peak"],
            "recent": recent.copy(),
            "pool": f"{type(pool).__name__} size {pool.size()} + overflow "
            f"{getattr(pool, '_max_overflow', '?')}",
        }
        counts["peak"] = counts["in_use"]
        recent.clear()
        return out

    @app.post("/_bench/profile")
    async def profile(request: Request) -> dict[str, Any]:
        from pyinstrument import Profiler

        body = await request.json()
        if body.get("path") is None:
            profiler.append(Profiler(interval=0.0005, async_mode="disabled"))
            profiler[-1].start()
        else:
            done = profiler.pop()
            done.stop()
            path = Path(body["path"])
            text = done.output_text(unicode=False, color=False)
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
            await asyncio.to_thread(done.last_session.save, path.with_suffix(".pyisession"))
        return {}

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None)
    sock = config.bind_socket()
    print(sock.getsockname()[1], flush=True)
    uvicorn.Server(config).run(sockets=[sock])


@contextlib.contextmanager
def child(
    role: str, log: Path, env: dict[str, str] | None = None, *, script: Path | None = None
) -> Iterator[str]:
    """Runs `script` (default: this file) as `role` in its own session (Ctrl-C reaches only us,
    and we stop it in order); yields the first line it prints."""
    command = [sys.executable, str((script or Path(__file__)).resolve()), "--role", role]
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    with log.open("w") as errors:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"{role} did not start:\n{log.read_text()[-3000:]}")
        yield line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT if role == "pantheon" else signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- set-up -----------------------------------------------------------------------------------


class _RemoteFake:
    """What write_fake_catalog needs of a fake server running in another process."""

    provider_entry = FakeOpenAIServer.provider_entry

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


async def prepare_database(url: str, catalog: Path, users: int) -> list[str]:
    """Migrates, loads the fake catalog, creates the users; returns their tokens."""
    database = await testdb.open_migrated(url)
    try:
        await sync_catalog(
            SqlUnitOfWork(database.writes), load_catalog(catalog).spec, overwrite=True
        )
        tokens = []
        for i in range(users):
            issued = await user_service.create_user(
                SqlUnitOfWork(database.writes),
                user_service.CreateUser(handle=f"bench{i}", role=Role.USER),
            )
            tokens.append(issued.secret)
        return tokens
    finally:
        await database.dispose()


# --- the measurements -------------------------------------------------------------------------


@dataclass
class Turn:
    start: float
    end: float
    ok: bool
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Bench:
    """Task i uses pools[i % len(pools)]: one httpx pool shared by N concurrent streams costs
    O(N) CPU per request (httpcore's `_assign_requests_to_connections` scans every connection),
    which at N = 100 would make this client, not Pantheon, the bottleneck."""

    api: list[httpx.AsyncClient]
    fake: list[httpx.AsyncClient]
    fake_url: str
    tokens: list[str]
    sessions: list[tuple[str, str]] = field(default_factory=list)  # (token, session id)

    async def gql(
        self, token: str, query: str, variables: dict[str, Any], task: int = 0
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"}
        response = await self.api[task % len(self.api)].post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    async def turn(self, index: int) -> Turn:
        token, session = self.sessions[index]
        start = time.monotonic()
        try:
            variables = {"input": {"sessionId": session, "message": "Hi"}}
            body = await self.gql(token, RUN, variables, index)
        except httpx.HTTPError as error:
            return Turn(start, time.monotonic(), False, repr(error))
        end = time.monotonic()
        turn = (body.get("data") or {}).get("runTurn")
        if turn and turn["status"] == "COMPLETED" and len(turn["messages"]) == len(ROSTER):
            return Turn(start, end, True)
        return Turn(start, end, False, json.dumps(body.get("errors") or turn)[:300])

    async def bare(self, task: int = 0) -> Turn:
        """The provider cost of one turn without Pantheon: 3 sequential streamed calls."""
        http = self.fake[task % len(self.fake)]
        start = time.monotonic()
        for position in range(len(ROSTER)):
            body = {
                "model": "bare",
                "messages": [
                    {"role": "system", "content": "You are a helpful agent."},
                    {"role": "user", "content": f"Hi ({position})"},
                ],
                "max_tokens": 2048,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            parts = []
            async with http.stream("POST", f"{self.fake_url}/chat/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        parts.append(chunk["choices"][0]["delta"]["content"])
            if "".join(parts) != ANSWER:
                return Turn(start, time.monotonic(), False, "bare call: wrong answer")
        return Turn(start, time.monotonic(), True)

    async def set_delay(self, seconds: float) -> None:
        control = self.fake_url.removesuffix("/v1")
        body = {"content": ANSWER, "hang": seconds}
        (await self.fake[0].post(f"{control}/_bench/default", json=body)).raise_for_status()

    async def arrivals(self) -> list[tuple[str, float]]:
        control = self.fake_url.removesuffix("/v1")
        return [(m, t) for m, t in (await self.fake[0].post(f"{control}/_bench/log")).json()]

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self.api[0].post("/_bench/stats")).json()
        return result

    async def profile(self, path: Path | None) -> None:
        body = {"path": str(path) if path else None}
        (await self.api[0].post("/_bench/profile", json=body)).raise_for_status()


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:10.2f} ms"


def row(label: str, values: Sequence[float]) -> None:
    p50, p99, mean = pct(values, 0.5), pct(values, 0.99), statistics.mean(values)
    print(f"   {label:34}{ms(p50)}{ms(p99)}{ms(mean)}")


def split(turn: Turn, arrivals: list[tuple[str, float]], bare: bool) -> list[float] | None:
    """[before the 1st call, between calls 1-2, between 2-3, after the 3rd call's arrival]."""
    times = sorted(t for m, t in arrivals if (m == "bare") == bare and turn.start <= t <= turn.end)
    if len(times) != len(ROSTER):
        return None
    edges = [turn.start, *times, turn.end]
    return [b - a for a, b in itertools.pairwise(edges)]


async def sequential(bench: Bench, turns: int, profile: Path | None, show_sql: bool) -> None:
    await bench.set_delay(0)
    for i in range(WARMUP):
        await bench.turn(i % SEQ_SESSIONS)
        await bench.bare()
    pings = []
    for _ in range(turns):
        start = time.monotonic()
        await bench.gql(bench.tokens[0], PING, {})
        pings.append(time.monotonic() - start)
    if profile:
        await bench.profile(None)
    before = await bench.stats()
    measured: list[tuple[Turn, Turn]] = []
    for i in range(turns):
        measured.append((await bench.turn(i % SEQ_SESSIONS), await bench.bare()))
    after = await bench.stats()
    if profile:
        await bench.profile(profile / "sequential.txt")
    failed = [t.error for pair in measured for t in pair if not t.ok]
    ours = [t.seconds for t, _ in measured]
    base = [b.seconds for _, b in measured]
    arrivals = await bench.arrivals()
    ours_split = [s for t, _ in measured if (s := split(t, arrivals, False))]
    base_split = [s for _, b in measured if (s := split(b, arrivals, True))]

    def part(index: int) -> float:
        return statistics.median(s[index] for s in ours_split) - statistics.median(
            s[index] for s in base_split
        )

    print(f"\n1) sequential, zero provider delay: {turns} turns over {SEQ_SESSIONS} sessions")
    print(f"   (after {WARMUP} warm-up turns), each followed by its bare baseline")
    print(f"   {'':34}{'p50':>13}{'p99':>13}{'mean':>13}")
    over = [o - b for o, b in zip(ours, base, strict=True)]
    row("runTurn, 3 agents", ours)
    row("bare provider, 3 streamed calls", base)
    row("overhead (turn - bare, paired)", over)
    print(f"   {'ratio turn / bare (p50)':34}{pct(ours, 0.5) / pct(base, 0.5):12.2f}x")
    print(f"   {'GraphQL floor: { me { id } }':34}{ms(pct(pings, 0.5))}{ms(pct(pings, 0.99))}")
    print(f"   {'turns/s (sequential, 1 client)':34}{len(ours) / sum(ours):13.1f}")
    if ours_split and base_split:
        print(
            f"   overhead split (p50, turn - bare): before 1st call {part(0) * 1000:.1f} ms | "
            f"between calls {part(1) * 1000:.1f} + {part(2) * 1000:.1f} ms | "
            f"after 3rd call {part(3) * 1000:.1f} ms"
        )
    cpu = (after["cpu"] - before["cpu"]) / turns
    sql = (after["statements"] - before["statements"]) / turns
    print(f"   server CPU per turn {cpu * 1000:.1f} ms | SQL statements per turn {sql:.1f}")
    if failed:
        print(f"   FAILED: {len(failed)}, first: {failed[0]}")
    if show_sql:
        await bench.stats()
        await bench.turn(0)
        await asyncio.sleep(0.2)  # the turn's request has returned; let its tail finish
        print("   SQL of one turn, in order:")
        for statement in (await bench.stats())["recent"]:
            print(f"     {statement}")


async def burst(bench: Bench, concurrency: int, bare: bool) -> tuple[float, list[Turn]]:
    start = time.monotonic()
    calls = [bench.bare(i) if bare else bench.turn(i) for i in range(concurrency)]
    results = await asyncio.gather(*calls)
    return time.monotonic() - start, list(results)


async def concurrent(
    bench: Bench, concurrency: int, delay: float, rounds: int, profile: Path | None
) -> None:
    await bench.set_delay(delay)
    ideal = len(ROSTER) * delay
    print(
        f"\n2) concurrent, {delay * 1000:.0f} ms per provider call: {concurrency} turns at once "
        f"on {concurrency} sessions of {len(bench.tokens)} users; ideal wall {ideal:.2f} s"
    )
    print(
        f"   {'':24}{'wall':>9}{'efficiency':>12}{'turns/s':>9}{'turn p50':>13}"
        f"{'turn p99':>13}{'failed':>8}{'CPU/turn':>13}{'peak DB conns':>15}"
    )
    for label in ["bare provider"] + [f"round {n + 1}" for n in range(rounds)]:
        is_bare = label == "bare provider"
        last = label == f"round {rounds}"
        if profile and last:
            await bench.profile(None)
        before = await bench.stats()
        wall, turns = await burst(bench, concurrency, is_bare)
        after = await bench.stats()
        if profile and last:
            await bench.profile(profile / "concurrent.txt")
        seconds = [t.seconds for t in turns]
        failed = [t.error for t in turns if not t.ok]
        cpu = "" if is_bare else ms((after["cpu"] - before["cpu"]) / concurrency)
        peak = "" if is_bare else str(after["peak"])
        print(
            f"   {label:24}{wall:7.2f} s{ideal / wall:12.2f}{concurrency / wall:9.1f}"
            f"{ms(pct(seconds, 0.5))}{ms(pct(seconds, 0.99))}{len(failed):8d}{cpu:>13}{peak:>15}"
        )
        if failed:
            print(f"     first failure: {failed[0]}")
    print("   efficiency = ideal / wall; round 1 also opens the pools' new connections")


async def run(args: argparse.Namespace, api_url: str, fake_url: str, tokens: list[str]) -> None:
    shards = math.ceil(args.concurrency / POOL_SHARD)
    limits = httpx.Limits(max_connections=POOL_SHARD + 5, max_keepalive_connections=POOL_SHARD + 5)
    async with contextlib.AsyncExitStack() as stack:
        pools = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=limits, timeout=60)
            )
            for base in [api_url] * shards + [""] * shards
        ]
        api = pools[0]
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await api.get("/api/v1/ready")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("Pantheon did not become ready")
            await asyncio.sleep(0.1)
        bench = Bench(api=pools[:shards], fake=pools[shards:], fake_url=fake_url, tokens=tokens)
        for i in range(max(args.concurrency, SEQ_SESSIONS)):
            token = tokens[i % len(tokens)]
            body = await bench.gql(token, CREATE, {"keys": ROSTER})
            bench.sessions.append((token, body["data"]["createSession"]["id"]))
        print(f"   server DB pool (as reported): {(await bench.stats())['pool']}")
        await sequential(bench, args.turns, args.profile, args.show_sql)
        await concurrent(bench, args.concurrency, args.delay_ms / 1000, args.rounds, args.profile)
        if args.profile:
            print(f"\n   profiles (server, pyinstrument): {args.profile}/*.txt")


async def cpu_per_turn(
    benches: dict[str, Bench], turns: int
) -> dict[str, tuple[float, float, int]]:
    """Per server: (CPU per turn, p50 seconds per turn, failures) over `turns` sequential turns,
    the servers' turns interleaved (off, on, off, ...) so both see the same machine load."""
    for i in range(WARMUP):
        for bench in benches.values():
            await bench.turn(i % SEQ_SESSIONS)
    before = {label: await bench.stats() for label, bench in benches.items()}
    measured: dict[str, list[Turn]] = {label: [] for label in benches}
    for i in range(turns):
        for label, bench in benches.items():
            measured[label].append(await bench.turn(i % SEQ_SESSIONS))
    # The batch delay (OTEL_BSP_SCHEDULE_DELAY, below) passes inside the window: the last
    # turns' spans are exported in it too. Idle, a server spends next to no CPU.
    await asyncio.sleep(BATCH_DELAY_MS / 1000 + 0.2)
    after = {label: await bench.stats() for label, bench in benches.items()}
    return {
        label: (
            (after[label]["cpu"] - before[label]["cpu"]) / turns,
            pct([t.seconds for t in measured[label]], 0.5),
            sum(not t.ok for t in measured[label]),
        )
        for label in benches
    }


async def run_otel(
    args: argparse.Namespace, servers: dict[str, str], fake_url: str, tokens: list[str], sink: str
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        benches: dict[str, Bench] = {}
        for label, api_url in servers.items():
            api = await stack.enter_async_context(httpx.AsyncClient(base_url=api_url, timeout=60))
            fake = await stack.enter_async_context(httpx.AsyncClient(timeout=60))
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await api.get("/api/v1/ready")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Pantheon ({label}) did not become ready")
                await asyncio.sleep(0.1)
            bench = Bench(api=[api], fake=[fake], fake_url=fake_url, tokens=tokens)
            for i in range(SEQ_SESSIONS):
                token = tokens[i % len(tokens)]
                body = await bench.gql(token, CREATE, {"keys": ROSTER})
                bench.sessions.append((token, body["data"]["createSession"]["id"]))
            benches[label] = bench
        await benches["off"].set_delay(0)
        print(f"\n--otel: {args.turns} sequential turns per server per round, zero provider delay")
        print(
            f"   {'round':8}{'CPU/turn off':>15}{'CPU/turn on':>15}{'on - off':>12}"
            f"{'p50 off':>12}{'p50 on':>12}"
        )
        diffs = []
        for round_ in range(1, args.rounds + 1):
            results = await cpu_per_turn(benches, args.turns)
            off, on = results["off"], results["on"]
            diffs.append(on[0] - off[0])
            print(
                f"   {round_:<8}{off[0] * 1000:12.2f} ms{on[0] * 1000:12.2f} ms"
                f"{(on[0] - off[0]) * 1000:9.2f} ms{off[1] * 1000:9.1f} ms{on[1] * 1000:9.1f} ms"
                + (f"  FAILED off {off[2]} on {on[2]}" if off[2] or on[2] else "")
            )
        async with httpx.AsyncClient() as http:
            counts = (await http.get(f"{sink}/count")).json()
        print(
            f"   tracing costs {statistics.median(diffs) * 1000:.2f} ms CPU per turn (median of"
            f" rounds; mean {statistics.mean(diffs) * 1000:.2f} ms)"
        )
        print(f"   the sink received {counts['exports']} OTLP exports, {counts['bytes']} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=50, help="sequential turns")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent turns")
    parser.add_argument("--rounds", type=int, default=2, help="concurrent bursts")
    parser.add_argument("--delay-ms", type=float, default=200, help="per call, concurrent phase")
    parser.add_argument("--users", type=int, default=10, help="session owners")
    parser.add_argument(
        "--database-url",
        default="postgres",
        help="postgres (default: a fresh database on the local server), sqlite (a temp file), "
        "or a postgresql+asyncpg:// URL beside which a fresh database is made",
    )
    parser.add_argument("--db-pool-size", type=int, default=None, help="default: min(conc., 40)")
    parser.add_argument("--db-max-overflow", type=int, default=10)
    parser.add_argument("--show-sql", action="store_true", help="list one turn's statements")
    parser.add_argument("--profile", type=Path, default=None, help="write pyinstrument reports")
    parser.add_argument(
        "--otel", action="store_true", help="CPU per turn with tracing on vs off (see above)"
    )
    parser.add_argument("--role", choices=["fake", "pantheon", "sink"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "fake":
        serve_fake()
        return
    if args.role == "sink":
        serve_sink()
        return
    if args.role == "pantheon":
        serve_pantheon()
        return
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    pool_size = args.db_pool_size or min(args.concurrency, 40)
    provider_pool = {
        "max_connections": args.concurrency + 20,
        "max_keepalive": args.concurrency + 20,
        "pool_timeout": 10.0,
    }
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="turn-bench-")))
        if args.database_url == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp / 'pantheon.db'}"
        else:
            admin = args.database_url
            if admin == "postgres":
                admin = testdb.pg_admin_url() or LOCAL_PG
            url = asyncio.run(testdb.create_pg_database(admin, prefix="pantheon_bench"))
            stack.callback(lambda: asyncio.run(testdb.drop_pg_database(admin, url)))
        fake_url = stack.enter_context(child("fake", tmp / "fake.log"))
        catalog = write_fake_catalog(
            tmp / "catalog.toml",
            _RemoteFake(fake_url),  # type: ignore[arg-type]
            pool=provider_pool,
            timeouts={"read": 30.0, "total": 60.0},
        )
        tokens = asyncio.run(prepare_database(url, catalog, args.users))
        env = {
            "PANTHEON_DATABASE_URL": url,
            "PANTHEON_CATALOG_FILE": str(catalog),
            "PANTHEON_DATA_DIR": str(tmp / "data"),
            "PANTHEON_DB_POOL_SIZE": str(pool_size),
            "PANTHEON_DB_MAX_OVERFLOW": str(args.db_max_overflow),
            "PANTHEON_MAX_RUNNING_TURNS_PER_USER": str(args.concurrency),
            # The rate limits stay on (their checks are part of what is measured), high enough
            # that the bench's users are never refused.
            "PANTHEON_RATE_LIMIT_REQUESTS_PER_MINUTE": "100000000",
            "PANTHEON_RATE_LIMIT_TURNS_PER_MINUTE": "100000000",
            "PANTHEON_RATE_LIMIT_TOKENS_PER_MINUTE": "100000000000",
        }
        # Off unless --otel turns it on below, whatever this shell exports.
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = ""
        if args.otel:
            sink = stack.enter_context(child("sink", tmp / "sink.log"))
            traced = {
                **env,
                "OTEL_EXPORTER_OTLP_ENDPOINT": sink,
                "OTEL_BSP_SCHEDULE_DELAY": str(BATCH_DELAY_MS),
                "PANTHEON_DATA_DIR": str(tmp / "data-on"),
            }
            servers = {
                "off": stack.enter_context(child("pantheon", tmp / "pantheon.log", env)),
                "on": stack.enter_context(child("pantheon", tmp / "pantheon-on.log", traced)),
            }
            urls = {label: f"http://127.0.0.1:{port}" for label, port in servers.items()}
            print(f"Pantheon tracing overhead; python {sys.version.split()[0]}; sink {sink}")
            asyncio.run(run_otel(args, urls, fake_url, tokens, sink))
            return
        port = stack.enter_context(child("pantheon", tmp / "pantheon.log", env))
        kind = "SQLite (temp file)" if url.startswith("sqlite") else "PostgreSQL (fresh database)"
        print(f"Pantheon turn overhead: {kind}; python {sys.version.split()[0]}")
        print(
            "   Pantheon = uvicorn subprocess; fake OpenAI server = subprocess; client = httpx"
            f"\n   3-agent ROUNDTABLE turns, {len(ANSWER.split())} deltas per call"
            f"\n   settings: db_pool_size {pool_size}, db_max_overflow {args.db_max_overflow}"
            f"{' (unused on SQLite)' if url.startswith('sqlite') else ''}, "
            f"max_running_turns_per_user {args.concurrency}"
            f"\n   provider pool: {provider_pool}"
            f"\n   bench client: one httpx pool per {POOL_SHARD} concurrent tasks"
        )
        try:
            asyncio.run(run(args, f"http://127.0.0.1:{port}", fake_url, tokens))
        except Exception:
            log = (tmp / "pantheon.log").read_text()
            print(f"--- Pantheon's log (tail) ---\n{log[-2000:]}", file=sys.stderr)
            raise


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary database removed", file=sys.stderr)
        sys.exit(130)
