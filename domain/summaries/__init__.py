"""Session memory: the two-stage summary pipeline (generation, then extraction)."""
