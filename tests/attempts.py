"""A successful provider call as calibration learns from it, for tests and benches."""

from __future__ import annotations

from domain.enums import TokenSource
from domain.llm import Attempt, TokenUsage


def provider_call(
    prompt: int, completion: int, *, estimated: int, source: TokenSource = TokenSource.PROVIDER
) -> Attempt:
    """One attempt that reached the provider and succeeded, with `prompt`/`completion` tokens
    counted by `source` where the heuristic had estimated `estimated` prompt tokens."""
    return Attempt(
        number=1,
        reached_provider=True,
        may_be_billed=True,
        succeeded=True,
        error_code=None,
        usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion, source=source),
        latency_ms=1,
        estimated_prompt_tokens=estimated,
    )
