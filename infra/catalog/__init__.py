"""The catalog file: providers, models with prices, the manager and summarizer, and agents."""
