"""Support for turn tests: a catalog whose every model is served by the fake OpenAI server, and
a bounded wait for what a background turn does.

Each catalog model maps to its own fake model id (`<alias>`), so a test scripts each agent, the
manager and the summarizer separately and reads exactly which calls each one received.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.openai_server import FakeOpenAIServer

AGENT_MODELS = {
    "qwen": "qwen-plus",
    "deepseek": "deepseek-chat",
    "writer": "writer-large",
    "researcher": "researcher-large",
}
MANAGER_MODEL = "manager-mini"
SUMMARIZER_MODEL = "summarizer-mini"


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def write_fake_catalog(path: Path, server: FakeOpenAIServer, **provider_overrides: Any) -> Path:
    """The default catalog's agents and prices, with every model on the fake server."""
    from infra.settings import DEFAULT_CATALOG

    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    entry = server.provider_entry(**provider_overrides)
    provider = "[providers.fake]\n" + "".join(
        f"{key} = {_toml_value(value)}\n" for key, value in entry.items()
    )
    text = text.replace('[providers.scripted]\nkind = "scripted"', provider, 1)
    text = text.replace('provider = "scripted"', 'provider = "fake"')
    # Each model's vendor id is its alias, so the fake server's per-model scripts apply.
    lines = []
    alias = None
    for line in text.splitlines():
        if line.startswith("alias = "):
            alias = json.loads(line.split("=", 1)[1].strip())
        if line.startswith("provider_model = ") and alias is not None:
            line = f"provider_model = {json.dumps(alias)}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def eventually(check: Callable[[], Any], *, within: float = 10.0) -> Any:
    """`await check()` until it is truthy (returned), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
