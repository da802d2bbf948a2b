"""Security headers for every HTML page Pantheon serves (GraphiQL today): build the response
with `html_response` and the page gets them.

The Content-Security-Policy allows only same-origin resources plus the exact inline `<script>`
and `<style>` blocks of the page, by their sha256 hashes computed from the rendered HTML (so a
template edit can never be left out of the policy, and injected markup never runs). The page
may not be framed (clickjacking) and sends no Referer: GraphiQL's `?token=` URL must not leak.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser

from fastapi.responses import HTMLResponse

# `<script type="application/json">` is data, never run: the policy need not (and does not)
# list it, but hashing it as well would be harmless.
_SCRIPT_TYPES = frozenset({"", "text/javascript", "module", "application/javascript"})


class _InlineBlocks(HTMLParser):
    """Collects the text of inline (no `src`) scripts and of `<style>` elements, verbatim."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._into: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes:
            if (attributes.get("type") or "").strip().lower() in _SCRIPT_TYPES:
                self._into, self._text = self.scripts, []
        elif tag == "style":
            self._into, self._text = self.styles, []

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._into is not None and tag in ("script", "style"):
            self._into.append("".join(self._text))
            self._into = None


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy(html: str) -> str:
    """The page's policy: 'self' plus the hashes of its inline scripts and styles."""
    blocks = _InlineBlocks()
    blocks.feed(html)
    blocks.close()
    scripts = " ".join(["'self'", *dict.fromkeys(_sha256(s) for s in blocks.scripts)])
    styles = " ".join(["'self'", *dict.fromkeys(_sha256(s) for s in blocks.styles)])
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",  # same-origin HTTP and (CSP3) ws:/wss: to the same host
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def html_security_headers(html: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(html),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def html_response(html: str, *, status_code: int = 200) -> HTMLResponse:
    """Every HTML page goes out through here, with `html_security_headers`."""
    return HTMLResponse(html, status_code=status_code, headers=html_security_headers(html))
