"""Event brokers: fan turn events out to subscribers (in-memory; Redis for many processes)."""
