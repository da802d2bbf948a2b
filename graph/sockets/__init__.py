"""WebSocket abuse limits: inbound message size, open sockets per user, and closing the sockets
of a user whose tokens were revoked (docs/streaming.md, *Socket limits*)."""
