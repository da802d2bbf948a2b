"""Prompt-estimate error before and after calibration, on a steady simulated workload.

Pantheon estimates prompt tokens with a heuristic (``domain/llm.py``: ~4 characters per token)
when a provider reports no usage. Calibration (``domain/calibration.py``) corrects the estimate
per model by the ratio observed on calls that did report usage. This script replays a workload of
chat prompts through both and prints how far each lands from what the "provider" counts.

The provider is simulated: no tokenizer ships with its data offline (tiktoken downloads its
tables), so the provider's count is a word-piece tokenizer — each word or punctuation run split
into pieces of at most ``--piece`` characters, plus ``--framing`` tokens per message and 3 for
the reply's priming. Every call reports usage, except every ``--estimated-every``-th, which is
metered as an estimate (a cut stream, a timeout): those rows are the ones measured.

    PYTHONPATH=. .venv/bin/python bench/estimate_error.py
    PYTHONPATH=. .venv/bin/python bench/estimate_error.py --calls 2000 --piece 6 --framing 3
"""

from __future__ import annotations

import argparse
import random
import re
import statistics

from domain.calibration import EwmaCalibration
from domain.llm import ChatMessage, estimate_prompt_tokens
from tests.attempts import provider_call

PERSONAS = [
    "You are a careful reviewer of deployment plans. Point out risks, missing rollback steps "
    "and unclear ownership. Answer in short paragraphs.",
    "You are a friendly writing assistant. Improve clarity, keep the author's voice, and explain "
    "each change you make in one sentence.",
    "You are a research assistant. Cite the kind of source that would settle each claim and say "
    "how confident you are, from 1 to 5.",
]
WORDS = [
    "the",
    "plan",
    "rollout",
    "billing",
    "service",
    "database",
    "migration",
    "index",
    "latency",
    "budget",
    "reviewer",
    "team",
    "deadline",
    "customer",
    "invoice",
    "report",
    "summary",
    "quarter",
    "metric",
    "alert",
    "dashboard",
    "incident",
    "cause",
    "fix",
    "test",
    "coverage",
    "release",
    "branch",
    "merge",
    "conflict",
    "schema",
    "query",
    "cache",
    "replica",
    "failover",
    "region",
    "traffic",
    "capacity",
    "forecast",
    "hiring",
    "onboarding",
    "document",
    "policy",
    "security",
    "audit",
    "token",
    "request",
]
PUNCTUATION = [".", ",", "?", ":", ";", " -"]
_PIECES = re.compile(r"\w+|[^\w\s]+")


def provider_tokens(messages: list[ChatMessage], *, piece: int, framing: int) -> int:
    """The simulated provider's count: word pieces of at most `piece` chars, plus framing."""
    content = sum(
        -(-len(run) // piece) for message in messages for run in _PIECES.findall(message.content)
    )
    return content + framing * len(messages) + 3


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(6, 18))
    return " ".join(words).capitalize() + rng.choice(PUNCTUATION)


def prompt(rng: random.Random) -> list[ChatMessage]:
    history = [
        ChatMessage(role=role, content=" ".join(sentence(rng) for _ in range(rng.randint(1, 6))))
        for _ in range(rng.randint(0, 4))
        for role in ("user", "assistant")
    ]
    message = " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))
    return [
        ChatMessage(role="system", content=rng.choice(PERSONAS)),
        *history,
        ChatMessage(role="user", content=message),
    ]


def summary(label: str, errors: list[float]) -> str:
    absolute = sorted(abs(e) for e in errors)
    p95 = absolute[int(0.95 * (len(absolute) - 1))]
    within = sum(a <= 0.03 for a in absolute) / len(absolute)
    return (
        f"{label:<11} mean {statistics.fmean(errors):+7.2%}   mean |error| "
        f"{statistics.fmean(absolute):6.2%}   p95 |error| {p95:6.2%}   within ±3 %: {within:6.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--estimated-every", type=int, default=10)
    parser.add_argument("--piece", type=int, default=5, help="provider's longest word piece")
    parser.add_argument("--framing", type=int, default=2, help="provider's tokens per message")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    calibration = EwmaCalibration()
    before: list[float] = []
    after: list[float] = []
    for number in range(1, args.calls + 1):
        messages = prompt(rng)
        estimated = estimate_prompt_tokens(messages)
        truth = provider_tokens(messages, piece=args.piece, framing=args.framing)
        if number % args.estimated_every:
            calibration.observe("model", [provider_call(truth, 100, estimated=estimated)])
            continue
        before.append(estimated / truth - 1)
        after.append(calibration.prompt_tokens("model", estimated) / truth - 1)

    print(
        f"{args.calls} calls, every {args.estimated_every}th estimated ({len(before)} rows); "
        f"provider: word pieces of <= {args.piece} chars, {args.framing} tokens per message"
    )
    print(summary("heuristic", before))
    print(summary("calibrated", after))


if __name__ == "__main__":
    main()
