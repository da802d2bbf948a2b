"""Telemetry set-up: Prometheus metrics (metrics.py, its `/metrics` route in route.py) and
OpenTelemetry tracing (tracing.py: tracer provider, exporters) with the spans infra code records."""
