"""Cross-process socket bookkeeping (the Redis implementation of graph/sockets' coordinator)."""
