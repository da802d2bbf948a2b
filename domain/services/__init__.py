"""Use cases: each opens one unit of work and commits it once (see docs/transaction_policy.md)."""
