"""What calls really cost, learned per model from the calls providers reported usage for.

Two figures per model, both exponentially weighted so a steady workload converges and a changed
one is followed within a few calls:

- the ratio of provider-reported prompt tokens to the heuristic estimate (``domain/llm.py``), which
  corrects estimated prompts: an ``ESTIMATED`` usage row (a cut stream, a timeout, a provider that
  reports no usage) and the prompts budgets price;
- the completion tokens of a successful call, which budget admission reserves instead of the
  model's maximum output (``PANTHEON_DEFAULT_EXPECTED_COMPLETION_TOKENS`` until there is history).

Kept in memory, per process: a restarted process learns again within a few calls.
Pure logic, no I/O; the runner and the turn service use it through the ``UsageCalibration`` port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.enums import TokenSource
from domain.llm import Attempt

DEFAULT_EXPECTED_COMPLETION_TOKENS = 256
SMOOTHING = 0.2  # weight of the newest observation: ~90 % of a step change within 10 calls


class UsageCalibration(Protocol):
    """The port budgets and metering use; ``EwmaCalibration`` is the implementation."""

    def prompt_tokens(self, model_alias: str, estimated: int) -> int:
        """``estimated`` (the heuristic) corrected by what the model's provider reports."""
        ...

    def expected_completion(self, model_alias: str, *, max_output_tokens: int) -> int:
        """The completion tokens a call to this model is expected to produce."""
        ...

    def observe(
        self, model_alias: str, attempts: Sequence[Attempt], *, completions: bool = True
    ) -> None:
        """Learn from a call's attempts; only provider-reported usage teaches anything.
        ``completions=False``: the completion was cut by a budget cap, so it says nothing of
        how long the model's answers are (only the prompt ratio is learned)."""
        ...


@dataclass(slots=True)
class _Average:
    value: float
    count: int = 1

    def add(self, observation: float) -> None:
        self.value += SMOOTHING * (observation - self.value)
        self.count += 1


class EwmaCalibration:
    """Per-model exponentially weighted averages; the first observation is taken as it is."""

    def __init__(
        self, *, default_expected_completion: int = DEFAULT_EXPECTED_COMPLETION_TOKENS
    ) -> None:
        self._default_completion = default_expected_completion
        self._prompt_ratio: dict[str, _Average] = {}
        self._completion: dict[str, _Average] = {}

    def prompt_tokens(self, model_alias: str, estimated: int) -> int:
        ratio = self._prompt_ratio.get(model_alias)
        return estimated if ratio is None else round(estimated * ratio.value)

    def prompt_ratio(self, model_alias: str) -> float:
        ratio = self._prompt_ratio.get(model_alias)
        return 1.0 if ratio is None else ratio.value

    def expected_completion(self, model_alias: str, *, max_output_tokens: int) -> int:
        learned = self._completion.get(model_alias)
        expected = self._default_completion if learned is None else round(learned.value)
        return max(min(expected, max_output_tokens), 1)

    def observe(
        self, model_alias: str, attempts: Sequence[Attempt], *, completions: bool = True
    ) -> None:
        for attempt in attempts:
            if attempt.usage.source is not TokenSource.PROVIDER:
                continue
            if attempt.estimated_prompt_tokens > 0 and attempt.usage.prompt_tokens > 0:
                ratio = attempt.usage.prompt_tokens / attempt.estimated_prompt_tokens
                _feed(self._prompt_ratio, model_alias, ratio)
            if attempt.succeeded and completions:
                _feed(self._completion, model_alias, attempt.usage.completion_tokens)


def _feed(averages: dict[str, _Average], key: str, observation: float) -> None:
    average = averages.get(key)
    if average is None:
        averages[key] = _Average(observation)
    else:
        average.add(observation)
