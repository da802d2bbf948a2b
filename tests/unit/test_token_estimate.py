"""The token estimation heuristic: ~4 characters per token, one per CJK character, framing."""

from __future__ import annotations

from domain.enums import TokenSource
from domain.llm import (
    MESSAGE_OVERHEAD_TOKENS,
    REPLY_PRIMING_TOKENS,
    ChatMessage,
    estimate_prompt_tokens,
    estimate_tokens,
    estimate_usage,
)


def test_empty_text_has_no_tokens() -> None:
    assert estimate_tokens("") == 0


def test_ascii_text_counts_four_characters_per_token_rounded_up() -> None:
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_english_prose_lands_near_what_tokenizers_report() -> None:
    # BPE tokenizers give about one token per word or punctuation mark here: 20.
    sentence = "The quick brown fox jumps over the lazy dog, and then it naps under the old tree."
    assert 16 <= estimate_tokens(sentence) <= 26


def test_cjk_characters_count_one_token_each() -> None:
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("こんにちは") == 5
    assert estimate_tokens("안녕하세요") == 5


def test_mixed_scripts_add_up() -> None:
    assert estimate_tokens("你好 hello") == 2 + 2  # 2 wide + ceil(6 narrow / 4)


def test_accented_latin_text_counts_like_ascii() -> None:
    assert estimate_tokens("café") == 1


def test_a_prompt_adds_framing_per_message_and_reply_priming() -> None:
    messages = [ChatMessage(role="system", content="abcd"), ChatMessage(role="user", content="ab")]
    assert estimate_prompt_tokens(messages) == 1 + 1 + 2 * MESSAGE_OVERHEAD_TOKENS + (
        REPLY_PRIMING_TOKENS
    )


def test_no_messages_cost_nothing() -> None:
    assert estimate_prompt_tokens([]) == 0


def test_estimated_usage_is_marked_estimated() -> None:
    usage = estimate_usage([ChatMessage(role="user", content="abcd")], "abcdefgh")
    assert usage.source is TokenSource.ESTIMATED
    assert (usage.prompt_tokens, usage.completion_tokens) == (1 + 4 + 3, 2)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (0, 0)
    assert usage.total_tokens == 10
