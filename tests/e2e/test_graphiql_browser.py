"""GraphiQL in a real browser: `pantheon serve` plus headless Chromium, driven over the Chrome
DevTools Protocol (CDP) with `websockets`, with no network beyond 127.0.0.1.

The page is opened as /graphql?token=<demo admin token>, the query `{ me { handle } }` is typed
into the query editor (its CodeMirror instance) and run with the execute button; the result pane
must show the admin's handle, and the page must cause no Content-Security-Policy violation (while
an inline script injected afterwards is refused: the policy is enforced). A screenshot goes to
$PANTHEON_ARTIFACTS_DIR (else a tmp dir).

Skipped when /usr/bin/chromium is missing, unless PANTHEON_REQUIRE_BROWSER=1 (.ci/run sets it):
then a missing browser fails the test.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.integration.test_cli import cli_env, free_port, running_server

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "PANTHEON_REQUIRE_BROWSER"
ARTIFACTS_ENV = "PANTHEON_ARTIFACTS_DIR"

QUERY = "{ me { handle } }"
EXPECTED = '"handle": "admin"'
LOCAL_PREFIXES = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")

BROWSER_START_TIMEOUT = 15.0
CDP_CALL_TIMEOUT = 10.0
RENDER_TIMEOUT = 15.0
RESULT_TIMEOUT = 10.0
POLL_INTERVAL = 0.1

# GraphiQL 3.x renders its editors with CodeMirror 5: each `.CodeMirror` element carries the
# editor instance as a `CodeMirror` property.
_EDITOR = "document.querySelector({selector!r} + ' .CodeMirror')"
QUERY_EDITOR = _EDITOR.format(selector=".graphiql-query-editor")
RESULT_EDITOR = _EDITOR.format(selector=".graphiql-response .result-window")
EXECUTE_BUTTON = "document.querySelector('.graphiql-execute-button')"

JS_RENDERED = f"!!({QUERY_EDITOR} && {QUERY_EDITOR}.CodeMirror && {EXECUTE_BUTTON})"
JS_SET_QUERY = f"{QUERY_EDITOR}.CodeMirror.setValue({json.dumps(QUERY)}); true"
JS_QUERY_TEXT = f"{QUERY_EDITOR}.CodeMirror.getValue()"
JS_RUN = f"{EXECUTE_BUTTON}.click(); true"
JS_RESULT_TEXT = f"(({RESULT_EDITOR} || {{}}).CodeMirror || {{getValue: () => ''}}).getValue()"

# Installed by CDP before the page's own scripts (CDP's scripts are exempt from the page's CSP):
# every Content-Security-Policy violation the page causes is recorded.
JS_RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.effectiveDirective + " " + (event.blockedURI || "inline"));
});
"""
JS_CSP_VIOLATIONS = "window.__cspViolations"
# Subscriptions: the page may open its WebSocket (same origin, `connect-src 'self'`).
JS_OPEN_SOCKET = """(() => {
  window.__socketState = "pending";
  const url = new URL("/graphql", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url.href, "graphql-transport-ws");
  socket.onopen = () => { window.__socketState = "open"; socket.close(); };
  socket.onerror = () => { window.__socketState = "error"; };
  return true;
})()"""
JS_SOCKET_STATE = "window.__socketState !== 'pending' && window.__socketState"
# The control: an inline script the page never had must be refused by its policy.
JS_INJECT_INLINE_SCRIPT = """(() => {
  const script = document.createElement("script");
  script.textContent = "window.__injectedRan = true;";
  document.body.appendChild(script);
  return true;
})()"""


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(
            f"{CHROMIUM} is missing and {REQUIRE_BROWSER_ENV}=1: the GraphiQL browser test "
            "must run here (install it with `apt-get install -y chromium`)"
        )
    pytest.skip(f"{CHROMIUM} is missing (set {REQUIRE_BROWSER_ENV}=1 to make this a failure)")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Chromium forks zygote/renderer/GPU helpers: end its whole process group (ours alone)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def running_chromium(user_data_dir: Path, log_file: Path) -> Iterator[str]:
    """Headless Chromium on a free debugging port; yields the page target's CDP WebSocket URL."""
    port = free_port()
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={user_data_dir}",
                f"--remote-debugging-port={port}",
                "--window-size=1280,800",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches every child
        )
    try:
        yield _page_target(process, port, log_file)
    finally:
        _kill_group(process)


def _page_target(process: subprocess.Popen[bytes], port: int, log_file: Path) -> str:
    deadline = time.monotonic() + BROWSER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chromium exited with {process.returncode}:\n{_tail(log_file)}")
        try:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
        except (httpx.TransportError, ValueError):
            targets = []
        pages = [target for target in targets if target.get("type") == "page"]
        if pages:
            url: str = pages[0]["webSocketDebuggerUrl"]
            return url
        time.sleep(POLL_INTERVAL)
    pytest.fail(
        f"chromium offered no page target within {BROWSER_START_TIMEOUT} s:\n{_tail(log_file)}"
    )


def _tail(log_file: Path, lines: int = 40) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])


class Cdp:
    """A minimal CDP session: numbered calls answered through futures, events kept in order."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                message = json.loads(raw)
                future = self._pending.pop(message.get("id", -1), None)
                if future is not None and not future.done():
                    future.set_result(message)
                elif "method" in message:
                    self.events.append(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the CDP connection closed"))

    async def close(self) -> None:
        self._reader.cancel()
        with suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await self._reader

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self._ws.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        message = await asyncio.wait_for(future, CDP_CALL_TIMEOUT)
        assert "error" not in message, f"{method}: {message['error']}"
        result: dict[str, Any] = message["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    async def poll(self, expression: str) -> Any:
        """The expression's first truthy value (unbounded: callers bound it with `_until`)."""
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(POLL_INTERVAL)

    def urls_requested(self) -> list[str]:
        urls = []
        for event in self.events:
            if event["method"] == "Network.requestWillBeSent":
                urls.append(event["params"]["request"]["url"])
            elif event["method"] == "Network.webSocketCreated":
                urls.append(event["params"]["url"])
        return urls

    def page_policy(self, origin: str) -> str:
        """The Content-Security-Policy header of the GraphiQL document's response."""
        for event in self.events:
            if event["method"] != "Network.responseReceived":
                continue
            response = event["params"]["response"]
            if event["params"].get("type") == "Document" and response["url"].startswith(origin):
                headers = {k.lower(): v for k, v in response["headers"].items()}
                return str(headers.get("content-security-policy", ""))
        return ""

    def csp_console_errors(self) -> list[str]:
        """Console entries about the Content-Security-Policy (Chromium logs each refusal)."""
        texts = [
            str(event["params"]["entry"].get("text", ""))
            for event in self.events
            if event["method"] == "Log.entryAdded"
        ]
        return [text for text in texts if "Content Security Policy" in text]

    def diagnostics(self) -> str:
        lines = [f"requested: {url}" for url in self.urls_requested()]
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                details = event["params"]["exceptionDetails"]
                lines.append(f"exception: {details.get('exception', {}).get('description')}")
            elif event["method"] == "Runtime.consoleAPICalled":
                args = [arg.get("value", arg.get("description")) for arg in event["params"]["args"]]
                lines.append(f"console.{event['params']['type']}: {args}")
            elif event["method"] == "Log.entryAdded":
                lines.append(f"log: {event['params']['entry'].get('text')}")
        return "\n".join(lines)


async def _until(cdp: Cdp, expression: str, seconds: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(cdp.poll(expression), seconds)
    except TimeoutError:
        pytest.fail(f"{what} within {seconds} s\n{cdp.diagnostics()}")


def _artifacts_dir(tmp_path: Path) -> Path:
    configured = os.environ.get(ARTIFACTS_ENV)
    directory = Path(configured) if configured else tmp_path / "artifacts"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.mark.e2e
@pytest.mark.timeout(90)
async def test_graphiql_runs_me_query_in_headless_chromium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_chromium()
    cwd = tmp_path / "work"
    cwd.mkdir()

    with (
        running_server(cwd, cli_env(tmp_path), tmp_path / "server.log") as server,
        running_chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log") as page_ws,
    ):
        token = server.demo_admin_token()
        async with websockets.connect(page_ws, max_size=64 * 1024 * 1024) as ws:
            cdp = Cdp(ws)
            try:
                # given: GraphiQL opened with the admin token prefilled in the headers
                for domain in ("Network", "Page", "Runtime", "Log"):
                    await cdp.call(f"{domain}.enable")
                await cdp.call(
                    "Page.addScriptToEvaluateOnNewDocument", source=JS_RECORD_CSP_VIOLATIONS
                )
                await cdp.call("Page.navigate", url=f"{server.url}/graphql?token={token}")
                await _until(cdp, JS_RENDERED, RENDER_TIMEOUT, "GraphiQL did not render")

                # when: the query is typed into the editor and run
                await cdp.evaluate(JS_SET_QUERY)
                assert await cdp.evaluate(JS_QUERY_TEXT) == QUERY
                await cdp.evaluate(JS_RUN)

                # then: the result pane shows the admin
                result = await _until(
                    cdp,
                    f"(() => {{ const text = {JS_RESULT_TEXT}; "
                    f"return text.includes({json.dumps(EXPECTED)}) ? text : ''; }})()",
                    RESULT_TIMEOUT,
                    f"the result pane did not show {EXPECTED}",
                )
                assert '"errors"' not in result, result

                shot = await cdp.call("Page.captureScreenshot", format="png")
                screenshot = _artifacts_dir(tmp_path) / "graphiql_me_query.png"
                screenshot.write_bytes(base64.b64decode(shot["data"]))
                with capsys.disabled():
                    print(f"\nGraphiQL screenshot: {screenshot}")

                # and: the page ran under its Content-Security-Policy without one violation
                assert "script-src 'self' 'sha256-" in cdp.page_policy(server.url), cdp.page_policy(
                    server.url
                )
                await cdp.evaluate(JS_OPEN_SOCKET)
                state = await _until(cdp, JS_SOCKET_STATE, RESULT_TIMEOUT, "no socket outcome")
                assert state == "open", cdp.diagnostics()
                assert await cdp.evaluate(JS_CSP_VIOLATIONS) == [], cdp.diagnostics()
                assert cdp.csp_console_errors() == []
                # (the control: an inline script the page did not ship is refused and reported)
                await cdp.evaluate(JS_INJECT_INLINE_SCRIPT)
                await _until(
                    cdp, f"{JS_CSP_VIOLATIONS}.length > 0", RESULT_TIMEOUT, "no CSP violation"
                )
                assert await cdp.evaluate("window.__injectedRan === undefined")
                assert await cdp.evaluate(JS_CSP_VIOLATIONS) == ["script-src-elem inline"]

                # and: nothing the page loaded came from beyond 127.0.0.1
                requested = cdp.urls_requested()
                assert any(url.startswith(f"{server.url}/graphql-ide/") for url in requested)
                offsite = [url for url in requested if not url.startswith(LOCAL_PREFIXES)]
                assert offsite == [], f"requests left 127.0.0.1: {offsite}"
            finally:
                await cdp.close()
