"""@tags in a user's message: `@qwen,` is a tag; `bob@qwen.com` is not."""

from __future__ import annotations

import re

TAG = re.compile(r"(?<![\w@])@([A-Za-z0-9_-]+)")


def parse_tags(message: str) -> list[str]:
    """Tags in order of first appearance, lower-cased (tags are case-insensitive), once each."""
    seen: dict[str, None] = {}
    for match in TAG.finditer(message):
        seen.setdefault(match.group(1).lower(), None)
    return list(seen)
