"""Subscriptions: turn progress (replay, then live) and session events."""
