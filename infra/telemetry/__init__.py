"""OpenTelemetry set-up (tracer provider, exporters) and the spans infra code records."""
