"""The offline provider's answers: pure functions from an ``LLMRequest`` to reply text.

Everything is deterministic (no ``hash()``, whose value changes between processes). Words are
compared lower-cased, without stop words and with a crude suffix strip, so "researcher" meets
"research", "writing" meets "writer" and "stories" meets "story".
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.enums import CallKind
from domain.llm import LLMRequest

OFFLINE_MARK = "[offline scripted reply]"

_TAG = re.compile(r"(?<![\w@])@([A-Za-z0-9_-]+)")  # the product's @tag syntax
_WORD = re.compile(r"[^\W\d_]{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_DECISION = re.compile(r"\b(decid|agree)", re.IGNORECASE)
_ACTION = re.compile(r"\b(will|should|todo|to-do|need to|needs to)\b", re.IGNORECASE)
_SUFFIXES = ("ing", "ers", "er", "ed", "es", "s")
_STOP_WORDS = frozenset(
    (  # noqa: SIM905 -- a sentence of words reads better than a 50-line list
        "the and for are but not you your with this that from have has was were will would can "
        "could should what when where which who why how about into over than then them they "
        "their there here just also more most some any all our out its let please"
    ).split()
)
_TEMPLATES = (
    "With a real model I would start from {topics}.",
    "The points I would look at first: {topics}.",
    "Here is where I would focus: {topics}.",
)


def reply_for(request: LLMRequest, *, seed: int) -> str:
    """The reply text for ``request``, chosen by its call kind."""
    if request.call_kind is CallKind.MANAGER_ROUTING:
        return routing_reply(_last_user_text(request))
    if request.call_kind is CallKind.SUMMARY_GENERATION:
        return summary_reply(_conversation_text(_all_user_text(request)))
    if request.call_kind is CallKind.SUMMARY_EXTRACTION:
        return extraction_reply(_last_user_text(request))
    return agent_reply(request, seed=seed)


def agent_reply(request: LLMRequest, *, seed: int) -> str:
    """A reply in the persona's voice about the last user message, marked as offline."""
    persona = request.persona or "Assistant"
    system = " ".join(m.content for m in request.messages if m.role == "system")
    flavour = _first_sentence(system, limit=80)
    message = _last_user_text(request)
    topics = _keywords(message, limit=3) or ["your message"]
    pick = zlib.crc32(f"{seed}|{persona}|{message}".encode()) % len(_TEMPLATES)
    voice = f" ({flavour})" if flavour else ""
    return (
        f"{OFFLINE_MARK} {persona}{voice}: you wrote “{_clip(message, 80)}”. "
        f"No model is configured for me, so this is a canned answer. "
        f"{_TEMPLATES[pick].format(topics=', '.join(topics))}"
    )


class _RosterEntry(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    name: str = ""
    description: str = ""


class _RoutingPrompt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    roster: list[_RosterEntry]
    message: str
    max_agents: int = Field(default=1, ge=1)


def routing_reply(prompt: str) -> str:
    """``{"selected_agent_keys": [...]}``: @mentions first, then by word overlap."""
    try:
        routing = _RoutingPrompt.model_validate_json(prompt)
    except ValidationError:
        return json.dumps({"selected_agent_keys": []})
    return json.dumps({"selected_agent_keys": _select_agents(routing)})


def _select_agents(routing: _RoutingPrompt) -> list[str]:
    if not routing.roster:
        return []
    chosen = _mentioned(routing)
    chosen += [key for key in _by_overlap(routing) if key not in chosen]
    return (chosen or [routing.roster[0].key])[: routing.max_agents]


def _mentioned(routing: _RoutingPrompt) -> list[str]:
    """Roster keys @mentioned in the message, in order of first mention."""
    by_lower = {entry.key.lower(): entry.key for entry in routing.roster}
    tags = (tag.lower() for tag in _TAG.findall(routing.message))
    return list(dict.fromkeys(by_lower[tag] for tag in tags if tag in by_lower))


def _by_overlap(routing: _RoutingPrompt) -> list[str]:
    """Roster keys sharing words with the message, most shared first, ties in roster order."""
    wanted = _stems(routing.message)
    scored = []
    for index, entry in enumerate(routing.roster):
        key_words = entry.key.replace("-", " ").replace("_", " ")
        overlap = len(wanted & _stems(f"{key_words} {entry.name} {entry.description}"))
        if overlap:
            scored.append((-overlap, index, entry.key))
    return [key for _, _, key in sorted(scored)]


def summary_reply(text: str) -> str:
    """``{"summary_text": ...}``: the (up to) four most representative sentences, in order."""
    sentences = _sentences(text)
    frequency = Counter(stem for s in sentences for stem in _stem_list(s))
    ranked = sorted(
        range(len(sentences)),
        key=lambda i: (-sum(frequency[w] for w in set(_stem_list(sentences[i]))), i),
    )
    kept = [_clip(sentences[i], 200) for i in sorted(ranked[:4])]
    summary = " ".join(kept) if kept else "Nothing to summarize yet."
    return json.dumps({"summary_text": summary}, ensure_ascii=False)


def extraction_reply(text: str) -> str:
    """The summary structure, each sentence sorted by its wording into one of four lists."""
    buckets: dict[str, list[str]] = {
        "key_points": [],
        "decisions": [],
        "action_items": [],
        "open_questions": [],
    }
    for sentence in _sentences(text):
        if "?" in sentence:
            buckets["open_questions"].append(sentence)
        elif _DECISION.search(sentence):
            buckets["decisions"].append(sentence)
        elif _ACTION.search(sentence):
            buckets["action_items"].append(sentence)
        else:
            buckets["key_points"].append(sentence)
    return json.dumps(buckets, ensure_ascii=False)


def _conversation_text(text: str) -> str:
    """The prose of the summarizer's JSON document (`{"previous_summary", "turns": [{"user",
    "agents"}]}`, see domain/summaries/generator.py); any other text as it is."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if not isinstance(document, dict) or not isinstance(document.get("turns"), list):
        return text
    parts = [str(document.get("previous_summary") or "")]
    for turn in document["turns"]:
        if isinstance(turn, dict):
            parts += [str(turn.get("user") or ""), str(turn.get("agents") or "")]
    return "\n".join(part for part in parts if part)


def _last_user_text(request: LLMRequest) -> str:
    users = [m.content for m in request.messages if m.role == "user"]
    return users[-1] if users else ""


def _all_user_text(request: LLMRequest) -> str:
    return "\n".join(m.content for m in request.messages if m.role == "user")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _first_sentence(text: str, *, limit: int) -> str:
    sentences = _sentences(text)
    return _clip(sentences[0].rstrip("."), limit) if sentences else ""


def _keywords(text: str, *, limit: int) -> list[str]:
    words = (w for w in _WORD.findall(text) if w.lower() not in _STOP_WORDS)
    return list(dict.fromkeys(w.lower() for w in words))[:limit]


def _stem_list(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]


def _stems(text: str) -> set[str]:
    return set(_stem_list(text))


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    # "write"/"writer" and "story"/"stories" should meet: drop a final e, read a final y as i.
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word[:-1] + "i" if len(word) > 3 and word.endswith("y") else word


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def word_groups(text: str, size: int = 3) -> Iterable[str]:
    """``text`` in pieces of ``size`` words (whitespace kept), as a model would stream it."""
    words = re.findall(r"\S+\s*", text)
    return ("".join(words[i : i + size]) for i in range(0, len(words), size))
