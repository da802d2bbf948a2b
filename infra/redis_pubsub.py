"""A Redis pub/sub channel listened to for as long as its owner is open, through outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any


async def listen_to_channel(
    redis: Any,
    channel: str,
    *,
    on_message: Callable[[Any], None],
    listening: asyncio.Event,
    closed: Callable[[], bool],
    name: str,
    where: str,
    log: logging.Logger,
    on_resubscribed: Callable[[], None] | None = None,
) -> None:
    """Hands each message's data on `channel` to `on_message` until `closed()` is true.

    A lost connection is logged once on `log` (as `name`), `listening` is cleared while it is
    down, and the channel is subscribed again after a backoff doubling from 0.1 s up to 5 s.
    `on_resubscribed` runs after each subscription that follows a loss: messages published
    meanwhile never arrived, and the owner may need to catch up.
    """
    backoff = 0.1
    lost = False  # messages published meanwhile never arrived
    while not closed():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(channel)
            listening.set()
            backoff = 0.1
            if lost:
                lost = False
                if on_resubscribed is not None:
                    on_resubscribed()
            while not closed():
                message = await pubsub.get_message(timeout=0.2)
                if message is not None and message.get("type") == "message":
                    on_message(message.get("data"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if closed():
                return
            lost = True
            if listening.is_set():
                log.warning(
                    "%s lost Redis at %s (%s); reconnecting", name, where, type(exc).__name__
                )
            listening.clear()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if closed():
            return
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
