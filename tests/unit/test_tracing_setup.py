"""infra/telemetry/tracing.py: tracing is on only with an OTLP endpoint, and honours OTEL_*."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from infra.telemetry.tracing import TracingConfigError, build_tracing, tracing_from_env

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


def test_tracing_is_off_without_an_endpoint() -> None:
    assert tracing_from_env({}) is None
    assert tracing_from_env({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}) is None


def test_the_sdk_switch_turns_it_off_even_with_an_endpoint() -> None:
    assert tracing_from_env({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}) is None


@pytest.mark.parametrize(
    "variables",
    [ENDPOINT, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}],
)
def test_an_endpoint_turns_it_on_with_the_default_service_name(variables: dict[str, str]) -> None:
    tracing = tracing_from_env(variables)
    assert tracing is not None
    try:
        assert tracing.provider.resource.attributes[SERVICE_NAME] == "pantheon"
        assert tracing.tracer.start_span("probe").is_recording()
        assert tracing.capture_content is False
    finally:
        tracing.provider.shutdown()  # nothing was ended, so nothing is exported


@pytest.mark.parametrize("protocol", ["grpc", "http/json"])
def test_a_protocol_that_is_not_installed_fails_clearly(protocol: str) -> None:
    with pytest.raises(TracingConfigError, match="http/protobuf"):
        tracing_from_env({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})


def test_service_name_and_sampler_come_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK reads these from the process environment itself.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "pantheon-eu")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tracing = build_tracing(InMemorySpanExporter(), environ=dict(ENDPOINT, OTEL_SERVICE_NAME="x"))
    assert tracing.provider.resource.attributes[SERVICE_NAME] == "pantheon-eu"
    assert not tracing.tracer.start_span("probe").is_recording()
