"""The offline provider: deterministic, instant answers, so Pantheon is usable with no API key.

Replies depend on ``request.call_kind`` (see ``infra.llm.scripted_replies``):

- ``AGENT_RESPONSE``: a short reply in ``request.persona``'s voice (flavoured by the first
  sentence of the system prompt) about the last user message. It starts with
  ``[offline scripted reply]`` so nobody mistakes it for a model's answer.
- ``MANAGER_ROUTING``: the contract the turn engine follows. The LAST user message's content is
  a JSON document::

      {"roster": [{"key": "writer", "name": "Writer", "description": "..."}, ...],
       "message": "the user's message", "max_agents": 2}

  and the answer is ``{"selected_agent_keys": [...]}``: the roster keys ``@mentioned`` in the
  message first (in order), then agents whose key, name or description share words with the
  message (most shared first, ties in roster order); at least one agent (the first of the roster
  when nothing matches), at most ``max_agents``. Content that is not such a document gets
  ``{"selected_agent_keys": []}``, which exercises the caller's fallback.
- ``SUMMARY_GENERATION``: ``{"summary_text": "..."}``, an extractive digest of the text of all
  user messages (put instructions in the system message, the conversation in user messages).
- ``SUMMARY_EXTRACTION``: ``{"key_points": [], "decisions": [], "action_items": [],
  "open_questions": []}`` from the sentences of the LAST user message: a "?" makes an open
  question, "decid…"/"agree…" a decision, "will/should/todo/need to" an action item, the rest
  key points.

Usage is estimated with the shared heuristic and marked ``ESTIMATED``, as for a real provider
that reports none, so metering shows figures offline. Every call succeeds in one attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from domain.llm import Attempt, LLMRequest, LLMResult, TextDelta
from infra.llm.recording import CallRecorder, RecordedStream
from infra.llm.scripted_replies import reply_for, word_groups
from infra.telemetry.genai import AttemptSpans


class ScriptedProvider:
    """An ``LLMGateway`` that needs no network. ``seed`` varies the agent replies' wording."""

    def __init__(self, *, seed: int = 0, spans: AttemptSpans | None = None) -> None:
        self._seed = seed
        self._spans = spans

    async def complete(
        self, request: LLMRequest, *, spent: list[Attempt] | None = None
    ) -> LLMResult:
        recorder = CallRecorder(request, spent=spent, spans=self._spans)
        recorder.begin()
        recorder.received(reply_for(request, seed=self._seed))
        return recorder.succeed(usage=None, finish_reason="stop")

    def stream(self, request: LLMRequest) -> RecordedStream:
        recorder = CallRecorder(request, spans=self._spans)
        return RecordedStream(self._stream(request, recorder), recorder)

    async def _stream(
        self, request: LLMRequest, recorder: CallRecorder
    ) -> AsyncGenerator[TextDelta | LLMResult, None]:
        recorder.begin()
        try:
            for piece in word_groups(reply_for(request, seed=self._seed)):
                await asyncio.sleep(0)  # let other tasks run between deltas, like a network read
                recorder.received(piece)
                yield TextDelta(text=piece)
            yield recorder.succeed(usage=None, finish_reason="stop")
        finally:
            recorder.abandon()

    async def aclose(self) -> None:
        """Nothing to release."""
