"""Delta latency: provider writes a delta -> a `turnProgress` subscriber receives its AgentDelta.

    PYTHONPATH=. python bench/stream_latency.py [--turns 100] [--deltas 200] [--interval-ms 5]
        [--broker memory|redis|both] [--lead-ms 1500] [--redis-url redis://127.0.0.1:6379/0]
        [--subscriber-buffer N]

Three processes, as in turn_overhead.py (whose helpers this reuses): Pantheon as a real uvicorn
server (`turn_overhead.py --role pantheon`, i.e. `create_app` from the environment's settings),
the fake OpenAI server, and this client. Each session has one agent (qwen, ROUNDTABLE), so a
turn is one streamed call of `--deltas` deltas, one every `--interval-ms` (`token_delay`).

How a delta is timed: the scripted deltas carry a placeholder (19 '#'); the fake's ASGI `send`
is wrapped so that, when the chunk holding it is handed to uvicorn (which writes it to the socket
at once), the placeholder becomes `time.monotonic_ns()` of that moment. The client takes
`time.monotonic_ns()` as soon as a WebSocket message arrives, before parsing it. CLOCK_MONOTONIC
is one system-wide clock on Linux, so the two processes' readings compare directly (the same
reasoning as turn_overhead's arrival split). Latency = receive - write, per delta.

Baseline, measured in the same run before Pantheon's: the bare relay (bench/stream_relay.py, a
fourth process, `--role relay`), a minimal Starlette app under uvicorn that, per WebSocket
client, opens the streamed call Pantheon would make to the same fake (same body, same scripted
deltas, interval and lead) and forwards each SSE chunk's delta text as one WebSocket message -
no GraphQL, no database, no broker. Its client is timed like Pantheon's (same stamps; the
"subscribe" time is when its start message is sent), so each Pantheon row also shows its p50
and p99 as a ratio of the bare relay's at the same concurrency.

Per broker (a fresh Pantheon process each, on one fresh PostgreSQL database): one warm-up turn,
then 1 subscribed turn, then `--turns` concurrent subscribed turns (one session and one
WebSocket each). Each subscriber connects (graphql-transport-ws, token in `connection_init`),
then starts its turn with `waitForCompletion: false` and subscribes to `turnProgress`; the fake
holds its response headers `--lead-ms` so every subscription is live before the first delta.
Deltas written before their subscription was sent would come from the replay, not the live
path; they are left out and counted ("replayed").

Resume, as a real client does: a subscription that ends with an error coded SLOW_CONSUMER or
EVENTS_UNAVAILABLE is re-subscribed on the same WebSocket (a new operation id) with
`afterSequence` = the error's `extensions.lastSequence`, or else the last sequence received;
"resumed" counts these. A resumed subscription's deltas written before it was sent are replayed
ones (the same rule). AgentDelta events may be merged (sequences `firstSequence..sequence`, their
stamped texts joined); across all subscriptions of a turn the covered sequences must be exactly
1..N, each once, or the turn counts in "seq err". `--subscriber-buffer` sets Pantheon's
(small values force SLOW_CONSUMER, to exercise the resume).

The Redis broker uses a random key prefix whose keys are deleted at the end; the database is
dropped. A scenario gives up 30 s after its lead: subscribers still waiting then count as failed
(what they received still counts), so a stuck broker cannot make the run unbounded. Pantheon's
warnings are summarised at the end. Not a test; not in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import websockets
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stream_relay import CONNECTIONS_ENV, FAKE_URL_ENV, serve_relay  # noqa: E402
from bench.turn_overhead import (  # noqa: E402
    LOCAL_PG,
    _RemoteFake,
    child,
    pct,
    prepare_database,
)
from tests import db as testdb  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402
from tests.turns_support import write_fake_catalog  # noqa: E402

PLACEHOLDER = b"#" * 19  # as wide as a zero-padded monotonic_ns, so lengths never change
STAMP = re.compile(r"\[(\d+):(\d{19})\]")
AGENT = "qwen"
MODEL = "qwen-plus"  # qwen's model; the fake's default answer is every model's anyway
BASELINE = "bare relay"
RESUMABLE = {"SLOW_CONSUMER", "EVENTS_UNAVAILABLE"}
MAX_RESUMES = 1000  # per turn; a resume loop that makes no progress ends as a failure
USERS = 10
WARMUP_DELTAS = 20
SCENARIO_TIMEOUT = 30.0  # seconds after the lead; keeps a stuck run bounded
CREATE = """mutation($keys: [String!]) {
  createSession(input: {agentKeys: $keys, defaultMode: ROUNDTABLE}) { id } }"""
RUN = """mutation($session: ID!) {
  runTurn(input: {sessionId: $session, message: "Hi", mode: ROUNDTABLE,
                  waitForCompletion: false}) { id status } }"""
PROGRESS = """subscription($id: ID!, $after: Int) {
  turnProgress(turnId: $id, afterSequence: $after) {
    __typename sequence
    ... on AgentDelta { position text firstSequence }
    ... on TurnFinished { turn { status } }
  }
}"""


# --- the fake, in its own process -------------------------------------------------------------


def serve_fake() -> None:
    """The fake OpenAI server, stamping each delta when it is written; `/_bench/default` sets
    the answer every model gives."""
    from tests.fakes.openai_script import FakeResponse
    from tests.fakes.openai_server import _json, _read_body

    class StampingFake(FakeOpenAIServer):
        async def _app(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope.get("path") == "/_bench/default":
                raw = await _read_body(receive)
                self.reset()
                self.set_default(FakeResponse.from_json(json.loads(raw)))
                await _json(send, 200, {})
                return

            async def stamped(message: Any) -> None:
                body = message.get("body")
                if body and PLACEHOLDER in body:
                    now = b"%019d" % time.monotonic_ns()
                    message = {**message, "body": body.replace(PLACEHOLDER, now)}
                await send(message)

            await super()._app(scope, receive, stamped)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with StampingFake() as server:
        print(server.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


# --- the client -------------------------------------------------------------------------------


@dataclass
class Followed:
    latencies: list[float] = field(default_factory=list)  # seconds, live deltas only
    writes: list[int] = field(default_factory=list)  # the fake's write times (ns), all deltas
    replayed: int = 0
    covered: list[int] = field(default_factory=list)  # sequences, over every subscription
    resumed: int = 0
    disagreed: int = 0  # resumes whose lastSequence was not the last sequence received
    status: str | None = None
    error: str | None = None
    stage: str = "new"

    def take(self, text: str, arrived: int, subscribed: int) -> None:
        """The stamped deltas in `text`, received at `arrived` by a subscription sent at
        `subscribed` (both monotonic ns)."""
        for _, stamp in STAMP.findall(text):
            written = int(stamp)
            self.writes.append(written)
            if written < subscribed:
                self.replayed += 1
            else:
                self.latencies.append((arrived - written) / 1e9)

    @property
    def last_sequence(self) -> int:
        return max(self.covered, default=0)

    @property
    def sequence_error(self) -> bool:
        """Not exactly 1..N, each once (nothing received is not an error here)."""
        return sorted(self.covered) != list(range(1, len(self.covered) + 1))


@dataclass
class Server:
    http: httpx.AsyncClient
    ws_url: str
    fake_url: str
    sessions: list[tuple[str, str]]  # (token, session id)

    async def gql(self, token: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise RuntimeError(json.dumps(body["errors"])[:500])
        return body

    async def script(self, deltas: int, interval: float, lead: float) -> None:
        await script_fake(self.http, self.fake_url, deltas, interval, lead)

    async def follow(self, index: int, ready: asyncio.Barrier, out: Followed) -> None:
        """Connect, wait for every subscriber to be connected, start the turn, subscribe."""
        token, session = self.sessions[index]
        out.stage = "connecting"
        async with websockets.connect(
            self.ws_url, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
        ) as ws:
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            await ws.send(json.dumps(init))
            ack = json.loads(await ws.recv())
            if ack.get("type") != "connection_ack":
                raise RuntimeError(f"not acknowledged: {ack}")
            out.stage = "connected"
            await ready.wait()
            out.stage = "starting"
            turn = (await self.gql(token, RUN, {"session": session}))["data"]["runTurn"]
            after = 0
            while True:
                op = str(out.resumed + 1)
                subscribed = time.monotonic_ns()
                request = {"query": PROGRESS, "variables": {"id": turn["id"], "after": after}}
                await ws.send(json.dumps({"id": op, "type": "subscribe", "payload": request}))
                out.stage = "subscribed"
                resume = await self.drain(ws, op, subscribed, out)
                if resume is None:
                    break
                out.resumed += 1
                out.disagreed += resume != out.last_sequence
                if out.resumed > MAX_RESUMES:
                    out.error = f"more than {MAX_RESUMES} resumes"
                    break
                after = resume
            out.stage = "done"

    @staticmethod
    async def drain(
        ws: websockets.ClientConnection, op: str, subscribed: int, out: Followed
    ) -> int | None:
        """Follows subscription `op` until it ends; returns the sequence to resume after if it
        ended with a resumable error, else None."""
        async for raw in ws:
            arrived = time.monotonic_ns()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
                continue
            if message.get("id") != op:  # e.g. the `complete` of an earlier subscription
                continue
            if kind == "complete":
                return None
            payload = message.get("payload")
            if kind == "error":  # graphql-transport-ws: the payload is the list of errors
                errors = payload if isinstance(payload, list) else [payload]
            else:
                errors = (payload or {}).get("errors") or []
            if errors:
                extensions = (errors[0] or {}).get("extensions") or {}
                if extensions.get("code") in RESUMABLE:
                    last = extensions.get("lastSequence")
                    return out.last_sequence if last is None else int(last)
                out.error = json.dumps(message)[:300]
                return None
            if kind != "next":
                continue
            event = payload["data"]["turnProgress"]
            if event["__typename"] == "AgentDelta":
                out.covered += range(event["firstSequence"], event["sequence"] + 1)
                out.take(event["text"], arrived, subscribed)
            else:
                out.covered.append(event["sequence"])
                if event["__typename"] == "TurnFinished":
                    out.status = event["turn"]["status"]
        return None  # the socket closed


@dataclass
class Relay:
    """The bare relay's client: the same scripting, barrier and stamps as Server's."""

    http: httpx.AsyncClient
    ws_url: str
    fake_url: str

    async def script(self, deltas: int, interval: float, lead: float) -> None:
        await script_fake(self.http, self.fake_url, deltas, interval, lead)

    async def follow(self, index: int, ready: asyncio.Barrier, out: Followed) -> None:
        out.stage = "connecting"
        async with websockets.connect(self.ws_url, max_size=None) as ws:
            out.stage = "connected"
            await ready.wait()
            out.stage = "starting"
            messages = [{"role": "user", "content": f"Hi ({index})"}]
            subscribed = time.monotonic_ns()
            await ws.send(json.dumps({"model": MODEL, "messages": messages}))
            out.stage = "subscribed"
            async for raw in ws:
                arrived = time.monotonic_ns()
                message = json.loads(raw)
                if "text" in message:
                    out.take(message["text"], arrived, subscribed)
                elif message.get("done"):
                    out.status = "COMPLETED"
                    break
                else:
                    out.error = json.dumps(message)[:300]
                    break
            out.stage = "done"


async def script_fake(
    http: httpx.AsyncClient, fake_url: str, deltas: int, interval: float, lead: float
) -> None:
    """Every model's answer: `deltas` stamped chunks, `interval` apart, headers held `lead`."""
    chunks = [f"[{i}:{PLACEHOLDER.decode()}] " for i in range(deltas)]
    body = {"chunks": chunks, "token_delay": interval, "hang": lead}
    control = fake_url.removesuffix("/v1")
    (await http.post(f"{control}/_bench/default", json=body)).raise_for_status()


@dataclass
class Result:
    label: str
    turns: int
    deltas: int
    followed: list[Followed]
    wall: float

    @property
    def baseline(self) -> bool:
        return self.label == BASELINE

    @property
    def latencies(self) -> list[float]:
        return [x for f in self.followed for x in f.latencies]

    def line(self, baseline: Result | None) -> str:
        latencies = self.latencies
        received = sum(len(f.writes) for f in self.followed)
        replayed = sum(f.replayed for f in self.followed)
        gaps = [
            (b - a) / 1e6
            for f in self.followed
            for a, b in zip(sorted(f.writes), sorted(f.writes)[1:], strict=False)
        ]
        bad = [f for f in self.followed if f.error or f.status != "COMPLETED"]
        cells = (
            f"{pct(latencies, 0.5) * 1000:9.2f}{pct(latencies, 0.99) * 1000:9.2f}"
            f"{max(latencies) * 1000:9.2f}"
            if latencies
            else f"{'-':>9}{'-':>9}{'-':>9}"
        )
        gap = f"{pct(gaps, 0.5):8.2f}" if gaps else f"{'-':>8}"
        if self.baseline:  # no sequences, nothing to resume
            resumed, errors = f"{'-':>8}", f"{'-':>8}"
        else:
            resumed = f"{sum(f.resumed for f in self.followed):8d}"
            errors = f"{sum(f.sequence_error for f in self.followed):8d}"
        ratios = f"{'-':>8}{'-':>8}"
        base = baseline.latencies if baseline else []
        if latencies and base and not self.baseline:
            ratios = "".join(f"{pct(latencies, q) / pct(base, q):7.1f}x" for q in (0.5, 0.99))
        return (
            f"   {self.label:11}{self.turns:6d}{received:>9}/{self.turns * self.deltas:<7d}"
            f"{replayed:9d}{resumed}{errors}{cells}{gap}{len(bad):7d}{self.wall:8.2f}{ratios}"
        )

    def first_failure(self) -> str | None:
        for f in self.followed:
            if f.error or f.status != "COMPLETED":
                return f.error or f"turn status {f.status}"
        return None


class Target(Protocol):
    """What a scenario drives: Pantheon (Server) or the bare relay (Relay)."""

    async def script(self, deltas: int, interval: float, lead: float) -> None: ...

    async def follow(self, index: int, ready: asyncio.Barrier, out: Followed) -> None: ...


async def scenario(
    target: Target, turns: int, deltas: int, interval: float, lead: float, first: int = 0
) -> tuple[list[Followed], float]:
    """`turns` concurrent turns on sessions `first`, `first` + 1, ..."""
    await target.script(deltas, interval, lead)
    ready = asyncio.Barrier(turns)
    start = time.monotonic()
    followed = [Followed() for _ in range(turns)]
    try:
        async with asyncio.timeout(lead + SCENARIO_TIMEOUT):
            await asyncio.gather(
                *(target.follow(first + i, ready, f) for i, f in enumerate(followed))
            )
    except TimeoutError:  # what arrived counts; the rest are failures
        stages = collections.Counter(f.stage for f in followed if f.stage != "done")
        for f in followed:
            if f.stage != "done" and f.error is None:
                f.error = f"no completion within {lead + SCENARIO_TIMEOUT:.0f} s ({dict(stages)})"
    return followed, time.monotonic() - start


async def scenarios(args: argparse.Namespace, label: str, target: Target) -> list[Result]:
    """One warm-up turn, then 1 and `--turns` concurrent turns. Each scenario has sessions of
    its own: a session's next turn may be refused (CONFLICT) for a moment after TurnFinished."""
    interval, lead = args.interval_ms / 1000, args.lead_ms / 1000
    await scenario(target, 1, WARMUP_DELTAS, interval, 0.2, first=args.turns)
    results = []
    for turns in sorted({1, args.turns}):
        # The same lead for both: every runTurn and subscribe of the burst lands first.
        first = args.turns + 1 if turns == 1 else 0
        followed, wall = await scenario(target, turns, args.deltas, interval, lead, first)
        results.append(Result(label, turns, args.deltas, followed, wall))
    return results


async def measure(
    args: argparse.Namespace, label: str, api_url: str, fake_url: str, tokens: list[str]
) -> list[Result]:
    limits = httpx.Limits(max_connections=args.turns + 5, max_keepalive_connections=args.turns + 5)
    async with httpx.AsyncClient(base_url=api_url, limits=limits, timeout=60) as http:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/api/v1/ready")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("Pantheon did not become ready")
            await asyncio.sleep(0.1)
        server = Server(http, api_url.replace("http", "ws", 1) + "/graphql", fake_url, [])
        for i in range(args.turns + 2):  # the burst's, the warm-up's, the single turn's
            token = tokens[i % len(tokens)]
            body = await server.gql(token, CREATE, {"keys": [AGENT]})
            server.sessions.append((token, body["data"]["createSession"]["id"]))
        return await scenarios(args, label, server)


async def measure_relay(args: argparse.Namespace, relay_url: str, fake_url: str) -> list[Result]:
    async with httpx.AsyncClient(timeout=60) as http:
        relay = Relay(http, relay_url, fake_url)
        return await scenarios(args, BASELINE, relay)


def log_summary(broker: str, log: Path) -> list[str]:
    """Pantheon's warnings and errors (its log level is WARNING), counted by message head."""
    heads: collections.Counter[str] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        if " WARNING " in line or " ERROR " in line:
            text = re.sub(r"\[[0-9a-f]{32}\] ", "", line.split(" ", 2)[-1])
            text = re.sub(
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text
            )
            heads[text[:150]] += 1
    if not heads:
        return [f"   Pantheon log ({broker}): no warnings or errors"]
    lines = [f"   Pantheon log ({broker}): {heads.total()} warnings/errors, most frequent:"]
    return lines + [f"     {count:5d} x {text}" for text, count in heads.most_common(4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100, help="concurrent subscribed turns")
    parser.add_argument("--deltas", type=int, default=200, help="deltas per turn")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="between deltas")
    parser.add_argument("--broker", choices=["memory", "redis", "both"], default="both")
    parser.add_argument(
        "--lead-ms", type=float, default=1500, help="the fake holds its headers this long"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--subscriber-buffer", type=int, default=None, help="Pantheon's (default: its own)"
    )
    parser.add_argument("--role", choices=["fake", "relay"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "fake":
        serve_fake()
        return
    if args.role == "relay":
        serve_relay()
        return
    brokers = ["memory", "redis"] if args.broker == "both" else [args.broker]
    prefix = f"pantheon-streambench-{secrets.token_hex(6)}"
    print(
        f"Pantheon delta latency (provider write -> subscriber receive); python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    print(
        f"   {args.deltas} deltas per turn, one every {args.interval_ms:g} ms; 1 agent per turn;"
        f" lead {args.lead_ms:g} ms\n   Pantheon, fake OpenAI server and this client: 3 "
        "processes on one machine; PostgreSQL (fresh database)\n   baseline: the bare relay "
        "(fake -> httpx -> WebSocket, Starlette under uvicorn), measured first, same script"
        + (
            f"\n   Pantheon's subscriber buffer: {args.subscriber_buffer}"
            if args.subscriber_buffer
            else ""
        )
    )
    results: list[Result] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stream-bench-")))
        admin = testdb.pg_admin_url() or LOCAL_PG
        url = asyncio.run(testdb.create_pg_database(admin, prefix="pantheon_stream_bench"))
        stack.callback(lambda: asyncio.run(testdb.drop_pg_database(admin, url)))
        fake_url = stack.enter_context(child("fake", tmp / "fake.log", script=Path(__file__)))
        catalog = write_fake_catalog(
            tmp / "catalog.toml",
            _RemoteFake(fake_url),  # type: ignore[arg-type]
            pool={
                "max_connections": args.turns + 20,
                "max_keepalive": args.turns + 20,
                "pool_timeout": 10.0,
            },
            timeouts={"read": 30.0, "total": 120.0},
        )
        tokens = asyncio.run(prepare_database(url, catalog, USERS))
        relay_env = {FAKE_URL_ENV: fake_url, CONNECTIONS_ENV: str(args.turns + 20)}
        with child("relay", tmp / "relay.log", relay_env, script=Path(__file__)) as port:
            relay_url = f"ws://127.0.0.1:{port}/relay"
            try:
                results += asyncio.run(measure_relay(args, relay_url, fake_url))
            except Exception:
                print(f"--- relay's log (tail) ---\n{(tmp / 'relay.log').read_text()[-2000:]}")
                raise
        for broker in brokers:
            env = {
                "PANTHEON_DATABASE_URL": url,
                "PANTHEON_CATALOG_FILE": str(catalog),
                "PANTHEON_DATA_DIR": str(tmp / "data"),
                "PANTHEON_DB_POOL_SIZE": str(min(args.turns, 40)),
                "PANTHEON_MAX_RUNNING_TURNS_PER_USER": str(args.turns),
                # Rate limits on but out of the way: one user runs every turn.
                "PANTHEON_RATE_LIMIT_REQUESTS_PER_MINUTE": "100000000",
                "PANTHEON_RATE_LIMIT_TURNS_PER_MINUTE": "100000000",
                "PANTHEON_RATE_LIMIT_TOKENS_PER_MINUTE": "100000000000",
                # one user holds every subscriber's socket (one per turn, plus the warm-up's)
                "PANTHEON_MAX_WEBSOCKETS_PER_USER": str(args.turns + 10),
                "PANTHEON_SUMMARY_THRESHOLD": "1000000",
                "PANTHEON_LOG_LEVEL": "WARNING",
            }
            if args.subscriber_buffer:
                env["PANTHEON_SUBSCRIBER_BUFFER"] = str(args.subscriber_buffer)
            if broker == "redis":
                env |= {"PANTHEON_REDIS_URL": args.redis_url, "PANTHEON_REDIS_KEY_PREFIX": prefix}
                stack.callback(
                    lambda: asyncio.run(testdb.delete_redis_keys(args.redis_url, prefix))
                )
            log = tmp / f"pantheon-{broker}.log"
            with child("pantheon", log, env) as port:
                try:
                    results += asyncio.run(
                        measure(args, broker, f"http://127.0.0.1:{port}", fake_url, tokens)
                    )
                except Exception:
                    print(
                        f"--- Pantheon's log (tail) ---\n{log.read_text()[-2000:]}", file=sys.stderr
                    )
                    raise
            notes += log_summary(broker, log)
    print(
        f"\n   {'broker':11}{'turns':>6}{'deltas received':>16}{'replayed':>9}{'resumed':>8}"
        f"{'seq err':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'gap ms':>8}{'failed':>7}"
        f"{'wall s':>8}{'p50 /':>8}{'p99 /':>8}"
    )
    baselines = {r.turns: r for r in results if r.baseline}
    for result in results:
        print(result.line(baselines.get(result.turns)))
    disagreed = sum(f.disagreed for r in results for f in r.followed)
    if disagreed:
        print(f"   {disagreed} resumes: lastSequence was not the last sequence received")
    for result in results:
        if failure := result.first_failure():
            print(f"   {result.label}, {result.turns} turns, first failure: {failure}")
    print(
        "   p50/p99/max over live deltas (aim: p50 < 5 ms, p99 < 25 ms); replayed = written "
        "before the subscribe was sent (excluded);\n   resumed = re-subscriptions after "
        "SLOW_CONSUMER/EVENTS_UNAVAILABLE; seq err = turns whose sequences were not 1..N once "
        "each;\n   gap = p50 interval between the fake's writes within a turn (scripted "
        f"{args.interval_ms:g} ms); p50 / p99 = Pantheon's over the bare relay's, same turns"
    )
    print("\n".join(notes))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted: servers stopped, database dropped, Redis keys deleted", file=sys.stderr)
        sys.exit(130)
