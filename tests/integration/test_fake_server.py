"""The fake OpenAI-compatible server itself: defaults, scripting, the log, and standalone use.
Plain synchronous httpx calls: the fake serves sync and async tests alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_script import DEFAULT_CONTENT, FakeResponse
from tests.fakes.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[2]


def _chat(fake: FakeOpenAIServer, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "two words"}], **extra}
    return httpx.post(f"{fake.base_url}/chat/completions", json=body, timeout=5)


def _content(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def _sse(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_every_model_answers_not_json_by_default(fake_openai: FakeOpenAIServer) -> None:
    assert DEFAULT_CONTENT == "not json"
    assert _content(_chat(fake_openai, "manager")) == "not json"
    assert _content(_chat(fake_openai, "anything-else")) == "not json"


def test_scripts_are_consumed_in_order_per_model_then_defaults_apply(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.script("a", FakeResponse(content="first"), FakeResponse(status=500))
    fake_openai.set_default(FakeResponse(content="a's default"), model="a")
    fake_openai.set_default(FakeResponse(content="everyone's default"))
    assert _content(_chat(fake_openai, "b")) == "everyone's default"
    assert _content(_chat(fake_openai, "a")) == "first"
    assert _chat(fake_openai, "a").status_code == 500
    assert _content(_chat(fake_openai, "a")) == "a's default"


def test_reset_restores_the_defaults_and_clears_the_log(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script("a", FakeResponse(content="scripted"))
    fake_openai.set_default(FakeResponse(content="changed"))
    fake_openai.reject_stream_options = True
    _chat(fake_openai, "b")
    fake_openai.reset()
    assert fake_openai.requests() == []
    assert _content(_chat(fake_openai, "a")) == "not json"
    assert _chat(fake_openai, "a", stream=True, stream_options={}).status_code == 200


def test_the_log_keeps_method_path_headers_and_body(fake_openai: FakeOpenAIServer) -> None:
    _chat(fake_openai, "a", temperature=0.5)
    httpx.get(f"{fake_openai.base_url}/models", headers={"x-probe": "1"})
    chat, other = fake_openai.requests()
    assert (chat.method, chat.path, chat.model, chat.streamed) == (
        "POST",
        "/v1/chat/completions",
        "a",
        False,
    )
    assert chat.body["temperature"] == 0.5
    assert chat.messages == [{"role": "user", "content": "two words"}]
    assert (other.method, other.path, other.headers["x-probe"]) == ("GET", "/v1/models", "1")
    assert fake_openai.requests(model="a") == [chat]


def test_streams_report_usage_only_when_asked(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.set_default(FakeResponse(content="one two", cached_tokens=1))
    plain = _sse(_chat(fake_openai, "a", stream=True))
    with_usage = _sse(_chat(fake_openai, "a", stream=True, stream_options={"include_usage": True}))
    assert plain[-1] == with_usage[-1] == "[DONE]"
    assert not any("usage" in json.loads(d) for d in plain[:-1])
    usage = json.loads(with_usage[-2])["usage"]
    assert usage["completion_tokens"] == 2
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1}
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") for d in plain[1:-2]]
    assert deltas == ["one ", "two"]


def test_usage_can_be_switched_off(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.set_default(FakeResponse(usage=False))
    assert "usage" not in _chat(fake_openai, "a").json()


def test_errors_carry_the_scripted_status_body_and_headers(fake_openai: FakeOpenAIServer) -> None:
    fake_openai.script(
        "a", FakeResponse(status=429, error_type="rate_limit", headers={"Retry-After": "2"})
    )
    response = _chat(fake_openai, "a")
    assert (response.status_code, response.headers["retry-after"]) == (429, "2")
    assert response.json()["error"]["type"] == "rate_limit"


def test_stream_options_can_be_rejected_like_some_servers_do(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.reject_stream_options = True
    assert _chat(fake_openai, "a", stream=True, stream_options={}).status_code == 400
    assert _chat(fake_openai, "a", stream=True).status_code == 200


def test_provider_entry_merges_nested_overrides(fake_openai: FakeOpenAIServer) -> None:
    entry = fake_openai.provider_entry(timeouts={"read": 9.0}, stream_usage=False)
    assert entry["timeouts"] == {"connect": 3.0, "read": 9.0, "write": 1.0, "total": 5.0}
    assert (entry["base_url"], entry["stream_usage"]) == (fake_openai.base_url, False)


def test_it_runs_standalone_from_the_command_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.fakes.openai_server", "--port", "0", "--content", "hi"]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            base_url = banner.rsplit(" ", 1)[-1].strip()
            body = {"model": "x", "messages": []}
            response = httpx.post(f"{base_url}/chat/completions", json=body, timeout=5)
            assert response.json()["choices"][0]["message"]["content"] == "hi"
        finally:
            proc.terminate()
    assert proc.returncode is not None
