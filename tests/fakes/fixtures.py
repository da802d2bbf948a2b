"""pytest fixtures for the fake OpenAI-compatible server.

Load them from the root ``tests/conftest.py`` with ``pytest_plugins = ["tests.fakes.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openai_script import DEFAULT_CONTENT, FakeResponse, RecordedRequest
from tests.fakes.openai_server import FakeOpenAIServer

__all__ = [
    "DEFAULT_CONTENT",
    "FakeOpenAIServer",
    "FakeResponse",
    "RecordedRequest",
    "fake_openai",
    "fake_openai_server",
]


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAIServer]:
    """One fake server for the whole run (a real socket on 127.0.0.1, its own thread)."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAIServer) -> FakeOpenAIServer:
    """The shared fake server with an empty script and log: every model answers ``not json``."""
    fake_openai_server.reset()
    return fake_openai_server
