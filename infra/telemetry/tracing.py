"""The tracer provider: on when an OTLP endpoint is configured, absent (and free) otherwise.

Configured from the standard ``OTEL_*`` variables only (they are OpenTelemetry's, not ours):
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` switches tracing on;
the SDK itself reads ``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``
(+ ``_ARG``), ``OTEL_BSP_*`` (batch delay, queue size) and ``OTEL_EXPORTER_OTLP_*`` (headers,
timeout, compression). Only the ``http/protobuf`` protocol is installed; asking for another one
fails the start with a clear message rather than exporting nothing.

The provider is never installed as the process-global one: each app is handed its own, so a
test can build one on an in-memory exporter and two apps in one process never share spans.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Tracer

log = logging.getLogger("pantheon.telemetry")

TRACER_NAME = "pantheon"
DEFAULT_SERVICE_NAME = "pantheon"
SUPPORTED_PROTOCOL = "http/protobuf"
CAPTURE_CONTENT_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


class TracingConfigError(ValueError):
    """An ``OTEL_*`` setting this server cannot honour."""


@dataclass(frozen=True, slots=True)
class Tracing:
    """An app's tracing: its provider and tracer, and whether message text may be recorded."""

    provider: TracerProvider
    tracer: Tracer
    capture_content: bool

    def shutdown(self) -> None:
        """Flush what is batched and stop the exporter (the app's shutdown calls it)."""
        self.provider.shutdown()


def tracing_from_env(environ: Mapping[str, str] | None = None) -> Tracing | None:
    """The tracing the ``OTEL_*`` variables ask for, or None (tracing off) without an endpoint."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or SUPPORTED_PROTOCOL
    ).strip()
    if protocol != SUPPORTED_PROTOCOL:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported: only "
            f"{SUPPORTED_PROTOCOL!r} is installed (unset it, or point at a collector's HTTP port)"
        )
    # Imported only when on: the exporter pulls in protobuf and requests.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    tracing = build_tracing(OTLPSpanExporter(), environ=env, batch=True)
    log.info("tracing on: exporting spans over OTLP (%s) to %s", protocol, endpoint)
    return tracing


def build_tracing(
    exporter: SpanExporter, *, environ: Mapping[str, str] | None = None, batch: bool = True
) -> Tracing:
    """A provider exporting to ``exporter`` (tests: an in-memory one with ``batch=False``)."""
    env = os.environ if environ is None else environ
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without either the
    # service is "pantheon" (the SDK would say "unknown_service").
    resource = Resource.create()
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    provider.add_span_processor(
        BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    )
    capture = env.get(CAPTURE_CONTENT_VARIABLE, "").strip().lower() == "true"
    return Tracing(
        provider=provider, tracer=provider.get_tracer(TRACER_NAME), capture_content=capture
    )
