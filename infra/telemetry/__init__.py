"""Telemetry set-up: Prometheus metrics (metrics.py) and their `/metrics` route (route.py)."""
