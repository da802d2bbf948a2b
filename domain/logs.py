"""Marks log records that carry caller content (prompts, messages, model output, input values).

Pass `extra=CARRIES_CONTENT` to such a call; the log handler (infra/logging.py) drops these
records unless PANTHEON_LOG_CONTENT=true. Everything else must be loggable as it is.
"""

from __future__ import annotations

from typing import Final

CONTENT_ATTRIBUTE: Final = "pantheon_content"
CARRIES_CONTENT: Final = {CONTENT_ATTRIBUTE: True}
