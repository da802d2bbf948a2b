"""Metering: one usage entry per call attempt that reached a provider, categorised and priced
at call time (PRODUCT.md, "Metering and the F46 decision"; docs/metering_policy.md).

Money is integer nano-USD. A row's cost is (prompt * input price + completion * output price)
/ 1e6 with prices in nano-USD per million tokens, rounded half-up to a whole nano-USD once per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from domain.calibration import UsageCalibration
from domain.enums import BillingCategory, CallKind, TokenSource
from domain.llm import Attempt, TokenUsage
from domain.records import Model

DEFAULT_CATEGORIES: Mapping[CallKind, BillingCategory] = {
    CallKind.AGENT_RESPONSE: BillingCategory.USER_BILLABLE,  # every roundtable reply too (F45)
    CallKind.MANAGER_ROUTING: BillingCategory.UNMETERED,  # F46, Option B (locked)
    CallKind.SUMMARY_GENERATION: BillingCategory.SYSTEM_OVERHEAD,
    CallKind.SUMMARY_EXTRACTION: BillingCategory.SYSTEM_OVERHEAD,
}


REFUSED_USAGE = TokenUsage(prompt_tokens=0, completion_tokens=0, source=TokenSource.NONE)


@dataclass(frozen=True, slots=True, kw_only=True)
class MeteringPolicy:
    """Which billing category each call kind gets; fixed on the row when the call is made."""

    categories: Mapping[CallKind, BillingCategory] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORIES)
    )

    def category(self, kind: CallKind) -> BillingCategory:
        return self.categories[kind]


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageEntry:
    """A usage row before it is stored; staged in the same unit of work as what it paid for."""

    call_kind: CallKind
    billing_category: BillingCategory
    position: int  # 0 for the manager, n for the n-th agent, summary stages 1 and 2
    attempt: int
    agent_key: str | None
    provider: str
    model_alias: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    token_source: TokenSource
    unpriced: bool
    input_nano_per_mtok: int | None
    output_nano_per_mtok: int | None
    cost_nano: int
    latency_ms: int
    succeeded: bool
    error_code: str | None
    provider_request_id: str | None
    provider_model: str | None = None
    recovered: bool = False


def cost_nano(prompt_tokens: int, completion_tokens: int, model: Model) -> int:
    if model.input_nano_per_mtok is None or model.output_nano_per_mtok is None:
        return 0
    scaled = (
        prompt_tokens * model.input_nano_per_mtok + completion_tokens * model.output_nano_per_mtok
    )
    whole, remainder = divmod(scaled, 1_000_000)
    return whole + (1 if remainder * 2 >= 1_000_000 else 0)


def refused(attempt: Attempt) -> bool:
    """The provider answered and refused (429, 5xx, 401/403, other 4xx): it served nothing and
    bills nothing. A stream cut or a timeout after the request was sent may be billed."""
    return attempt.reached_provider and not attempt.may_be_billed


def usage_entries(
    attempts: Sequence[Attempt],
    *,
    call_kind: CallKind,
    position: int,
    model: Model,
    agent_key: str | None,
    policy: MeteringPolicy,
    calibration: UsageCalibration | None = None,
) -> list[UsageEntry]:
    """Entries for the attempts that reached the provider. A refused attempt keeps its row (the
    audit trail: attempt number, latency, error) with 0 tokens, cost 0 and `TokenSource.NONE`;
    any other is metered from the provider's usage or our estimate, an estimated prompt corrected
    by ``calibration`` (what the model's provider reports) when there is one."""
    return [
        _entry(
            attempt,
            call_kind=call_kind,
            position=position,
            model=model,
            agent_key=agent_key,
            policy=policy,
            calibration=calibration,
        )
        for attempt in attempts
        if attempt.reached_provider
    ]


def _entry(
    attempt: Attempt,
    *,
    call_kind: CallKind,
    position: int,
    model: Model,
    agent_key: str | None,
    policy: MeteringPolicy,
    calibration: UsageCalibration | None,
) -> UsageEntry:
    usage = REFUSED_USAGE if refused(attempt) else attempt.usage
    prompt_tokens = _prompt_tokens(usage, model, calibration)
    return UsageEntry(
        call_kind=call_kind,
        billing_category=policy.category(call_kind),
        position=position,
        attempt=attempt.number,
        agent_key=agent_key,
        provider=model.provider,
        model_alias=model.alias,
        prompt_tokens=prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        token_source=usage.source,
        unpriced=not model.priced,
        input_nano_per_mtok=model.input_nano_per_mtok,
        output_nano_per_mtok=model.output_nano_per_mtok,
        cost_nano=cost_nano(prompt_tokens, usage.completion_tokens, model),
        latency_ms=attempt.latency_ms,
        succeeded=attempt.succeeded,
        error_code=str(attempt.error_code) if attempt.error_code else None,
        provider_request_id=attempt.provider_request_id,
        provider_model=model.provider_model,
    )


def _prompt_tokens(usage: TokenUsage, model: Model, calibration: UsageCalibration | None) -> int:
    """The usage's prompt tokens; an estimate corrected by calibration when there is one."""
    if calibration is None or usage.source is not TokenSource.ESTIMATED:
        return usage.prompt_tokens
    return calibration.prompt_tokens(model.alias, usage.prompt_tokens)


def worst_case_nano(prompt_tokens: int, model: Model) -> int:
    """A call's most expensive outcome: its prompt plus every output token it may produce."""
    return cost_nano(prompt_tokens, model.max_output_tokens, model)
