"""What the OpenAI-compatible client adds on top of a bare httpx loop, against the fake server.

    PYTHONPATH=. python bench/provider_overhead.py [--calls 300] [--deltas 64] [--streams 100]

The fake server runs in its own process (so it does not share this process's GIL) with zero
delay. Both sides use one pooled ``httpx.AsyncClient`` with the same limits and parse every SSE
line as JSON; the runs alternate call by call so drift hits both equally. Printed: latency per
call (p50/p99) for plain and streamed calls, the added cost per streamed delta, client CPU per
call, and throughput with N concurrent streams; ratios are ours / baseline (aim: < 1.2x).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.enums import CallKind  # noqa: E402
from domain.llm import ChatMessage, LLMRequest, LLMResult  # noqa: E402
from infra.llm.config import OpenAIProviderConfig  # noqa: E402
from infra.llm.openai_compatible import OpenAICompatibleClient  # noqa: E402

Call = Callable[[], Awaitable[str]]


def start_fake(content: str) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*command, "--content", content], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().rsplit(" ", 1)[-1].strip()


def baseline_calls(http: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> tuple[Call, Call]:
    async def complete() -> str:
        response = await http.post(url, json={**payload, "stream": False})
        return str(response.json()["choices"][0]["message"]["content"])

    async def stream() -> str:
        parts: list[str] = []
        body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        async with http.stream("POST", url, json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    continue  # read on to the end: breaking here would drop the connection
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    parts.append(chunk["choices"][0]["delta"]["content"])
        return "".join(parts)

    return complete, stream


def client_calls(client: OpenAICompatibleClient, request: LLMRequest) -> tuple[Call, Call]:
    async def complete() -> str:
        return (await client.complete(request)).text

    async def stream() -> str:
        async for item in client.stream(request):
            if isinstance(item, LLMResult):
                return item.text
        raise AssertionError("a stream without a result")

    return complete, stream


async def latencies(pairs: list[tuple[str, Call]], calls: int) -> dict[str, list[float]]:
    """Call each side in turn ``calls`` times; per-call seconds and client CPU seconds."""
    results: dict[str, list[float]] = {name: [] for name, _ in pairs}
    results.update({f"{name}:cpu": [] for name, _ in pairs})
    for _ in range(calls):
        for name, call in pairs:
            wall, cpu = time.perf_counter(), time.process_time()
            await call()
            results[name].append(time.perf_counter() - wall)
            results[f"{name}:cpu"].append(time.process_time() - cpu)
    return results


async def throughput(call: Call, streams: int, per_task: int) -> float:
    """Streams per second with ``streams`` concurrent tasks, each making ``per_task`` calls."""

    async def worker() -> None:
        for _ in range(per_task):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(streams)))
    return streams * per_task / (time.perf_counter() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, base_url: str) -> None:
    limits = {"max_connections": args.streams + 10, "max_keepalive": args.streams + 10}
    config = OpenAIProviderConfig.model_validate(
        {"kind": "openai", "base_url": base_url, "pool": limits}
    )
    messages = (ChatMessage(role="user", content="Say something, please."),)
    request = LLMRequest(
        provider="bench",
        model="m",
        messages=messages,
        max_output_tokens=256,
        call_kind=CallKind.AGENT_RESPONSE,
    )
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": messages[0].content}],
        "max_tokens": 256,
    }
    url = f"{base_url}/chat/completions"
    http_limits = httpx.Limits(
        max_connections=limits["max_connections"], max_keepalive_connections=limits["max_keepalive"]
    )
    async with (
        httpx.AsyncClient(limits=http_limits, timeout=30) as http,
        OpenAICompatibleClient(name="bench", config=config) as client,
    ):
        base_complete, base_stream = baseline_calls(http, url, payload)
        ours_complete, ours_stream = client_calls(client, request)
        assert await ours_stream() == await base_stream() == await ours_complete()
        await latencies([("b", base_complete), ("o", ours_complete)], 30)  # warm up
        plain = await latencies([("b", base_complete), ("o", ours_complete)], args.calls)
        streamed = await latencies([("b", base_stream), ("o", ours_stream)], args.calls)
        report("plain call", plain, None)
        report("streamed call", streamed, args.deltas)
        rates: dict[str, list[float]] = {"b": [], "o": []}
        for _ in range(3):
            rates["b"].append(await throughput(base_stream, args.streams, args.per_task))
            rates["o"].append(await throughput(ours_stream, args.streams, args.per_task))
        best_b, best_o = max(rates["b"]), max(rates["o"])
        print(f"\n{args.streams} concurrent streams x {args.per_task} calls (best of 3):")
        print(f"  bare httpx   {best_b:8.0f} streams/s  {best_b * args.deltas:10.0f} deltas/s")
        print(f"  our client   {best_o:8.0f} streams/s  {best_o * args.deltas:10.0f} deltas/s")
        print(f"  ratio (time per stream, ours / bare): {best_b / best_o:.2f}x")


def report(label: str, results: dict[str, list[float]], deltas: int | None) -> None:
    us = 1e6
    b50, o50 = pct(results["b"], 0.5) * us, pct(results["o"], 0.5) * us
    b99, o99 = pct(results["b"], 0.99) * us, pct(results["o"], 0.99) * us
    bcpu, ocpu = (statistics.mean(results[k]) * us for k in ("b:cpu", "o:cpu"))
    print(f"\n{label} ({len(results['b'])} each, alternating):")
    print(f"  bare httpx   p50 {b50:8.0f} us  p99 {b99:8.0f} us  client CPU {bcpu:7.0f} us")
    print(f"  our client   p50 {o50:8.0f} us  p99 {o99:8.0f} us  client CPU {ocpu:7.0f} us")
    print(
        f"  added p50 {o50 - b50:+.0f} us ({o50 / b50:.2f}x), p99 {o99 / b99:.2f}x, "
        f"CPU {ocpu / bcpu:.2f}x"
    )
    if deltas:
        print(f"  added per delta (p50): {(o50 - b50) / deltas:+.1f} us over {deltas} deltas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--deltas", type=int, default=64)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--per-task", type=int, default=5)
    args = parser.parse_args()
    proc, base_url = start_fake(" ".join(f"w{i}" for i in range(args.deltas)))
    try:
        print(f"fake server {base_url}, {args.deltas} deltas per answer, python {sys.version[:6]}")
        asyncio.run(run(args, base_url))
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
