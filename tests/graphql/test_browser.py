"""GraphiQL, driven in headless Chromium: it loads offline and runs queries end to end.

The page is served by the real app (the ``live_server`` fixture); every request the
browser makes must go to that server, and none may fail. Queries and headers are typed
through GraphiQL's own editors and the answer is read back from its result pane.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from db.enums import TokenRole
from db.session import Database
from tests.conftest import require_service
from tests.factories import make_batch, make_task_type, make_token, make_workspace

if TYPE_CHECKING:
    from playwright.async_api import Page

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACTION_TIMEOUT_MS = 10_000
TEST_TIMEOUT_S = 45

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
# The section holds both the variables and the headers editor; the inactive one is hidden.
HEADERS_EDITOR = (
    'section.graphiql-editor-tool[aria-label="Headers"]'
    " > .graphiql-editor:not(.hidden) > .CodeMirror"
)
RESULT_EDITOR = ".graphiql-response .CodeMirror"


def _chromium() -> str:
    """The system Chromium's path; skips (fails under CI) when it or Playwright is missing."""
    path = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if path is None:
        require_service("Chromium", "neither /usr/bin/chromium nor `chromium` on PATH")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        require_service("Chromium", f"the playwright package cannot be imported: {exc!r}")
    assert path is not None
    return path


async def _editor_value(page: Page, selector: str) -> str:
    return await page.locator(selector).evaluate("el => el.CodeMirror.getValue()")  # type: ignore[no-any-return]


async def _type_into(page: Page, selector: str, text: str) -> None:
    """Replace an editor's content the way a user would: click, select all, type."""
    await page.locator(selector).click()
    await page.keyboard.press("ControlOrMeta+a")
    # insert_text sends one input event (no per-key events), so CodeMirror's
    # bracket auto-closing cannot mangle the text.
    await page.keyboard.insert_text(text)
    value = await _editor_value(page, selector)
    assert value == text, f"the editor {selector!r} holds {value!r}, not {text!r}"


async def _execute(
    page: Page, query: str, expected: str, *, expect_post: bool = True
) -> tuple[dict[str, Any], Any]:
    """Type ``query``, press Execute, wait until the result pane shows ``expected``."""
    await _type_into(page, QUERY_EDITOR, query)
    # GraphiQL parses the query (and picks the operation name it will send) 100 ms after
    # the last edit; executing sooner would send the previous tab's operation name.
    await page.wait_for_function(
        """(selector) => {
            const cm = document.querySelector(selector).CodeMirror;
            const ops = cm.operations;
            return !!ops && ops.length > 0 && ops[0].loc.source.body === cm.getValue();
        }""",
        arg=QUERY_EDITOR,
        timeout=ACTION_TIMEOUT_MS,
    )
    headers: dict[str, Any] = {}
    if expect_post:
        async with page.expect_request(
            lambda r: r.method == "POST" and query in (r.post_data or "")
        ) as sent:
            await page.locator(".graphiql-execute-button").click()
        headers = await (await sent.value).all_headers()
    else:  # subscriptions go over the websocket
        await page.locator(".graphiql-execute-button").click()
    try:
        await page.wait_for_function(
            """([selector, expected]) =>
                document.querySelector(selector).CodeMirror.getValue().includes(expected)""",
            arg=[RESULT_EDITOR, expected],
            timeout=ACTION_TIMEOUT_MS,
        )
    except Exception as exc:
        shown = await _editor_value(page, RESULT_EDITOR)
        raise AssertionError(
            f"the result pane never showed {expected!r}; it shows {shown[:300]!r}"
        ) from exc
    return headers, json.loads(await _editor_value(page, RESULT_EDITOR))


async def _launch(p: Any, chromium: str) -> Any:
    from playwright.async_api import Error as PlaywrightError

    try:
        return await p.chromium.launch(
            headless=True, executable_path=chromium, args=CHROMIUM_ARGS, timeout=20_000
        )
    except PlaywrightError as exc:
        require_service("Chromium", f"{chromium} does not start: {exc}")


def _watch(page: Page) -> tuple[list[str], list[str], list[str]]:
    requested: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.on("websocket", lambda ws: requested.append(ws.url))
    page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return requested, failed, errors


async def _docs_show_the_query_type(page: Page) -> None:
    """Open the Docs pane and wait for the schema's root types, as a newcomer would."""
    docs = page.locator('.graphiql-sidebar button[aria-label="Show Documentation Explorer"]')
    if await docs.count():
        await docs.click()
    try:
        await page.locator(".graphiql-doc-explorer-root-type", has_text="query").wait_for(
            state="visible"
        )
    except Exception as exc:
        shown = await page.locator(".graphiql-doc-explorer").inner_text()
        raise AssertionError(f"Docs never showed the schema; it shows {shown[:300]!r}") from exc
    explorer = await page.locator(".graphiql-doc-explorer").inner_text()
    assert "Query" in explorer
    assert "Error fetching schema" not in explorer


async def _run_current_tab(page: Page, expected: str) -> dict[str, Any]:
    await page.locator(".graphiql-execute-button").click()
    await page.wait_for_function(
        """([selector, expected]) =>
            document.querySelector(selector).CodeMirror.getValue().includes(expected)""",
        arg=[RESULT_EDITOR, expected],
        timeout=ACTION_TIMEOUT_MS,
    )
    return json.loads(await _editor_value(page, RESULT_EDITOR))  # type: ignore[no-any-return]


@pytest.mark.browser
async def test_graphiql_works_on_first_open_for_a_newcomer(live_server: str, db: Database) -> None:
    """No placeholder header; the schema loads for everyone; the first tab runs; a public
    workspace is listed without a token; a token typed later works without a reload,
    and a refused one in the Headers tab does not break Docs."""
    chromium = _chromium()
    from playwright.async_api import async_playwright

    await make_workspace(db, "open-data", public=True)
    _, secret = await make_token(db, role=TokenRole.READER, owner="newcomer")

    async with asyncio.timeout(TEST_TIMEOUT_S), async_playwright() as p:
        browser = await _launch(p, chromium)
        try:
            context = await browser.new_context()  # a fresh profile: nothing stored
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            page = await context.new_page()
            _, failed, errors = _watch(page)
            await page.goto(f"{live_server}/graphql", wait_until="load")
            await page.locator(QUERY_EDITOR).wait_for(state="visible")
            assert "query WhoAmI" in await _editor_value(page, QUERY_EDITOR)
            assert "Headers tab" in await _editor_value(page, QUERY_EDITOR)

            await page.locator('.graphiql-editor-tools button[data-name="headers"]').click()
            await page.locator(HEADERS_EDITOR).wait_for(state="visible")
            assert (await _editor_value(page, HEADERS_EDITOR)).strip() == ""

            await _docs_show_the_query_type(page)
            first = await _run_current_tab(page, '"viewer"')
            assert "errors" not in first, first
            assert first["data"]["viewer"]["authenticated"] is False
            listed = [e["node"]["name"] for e in first["data"]["workspaces"]["edges"]]
            assert "open-data" in listed  # public, read without a token

            # A token typed now: the next run carries it, no reload.
            await _type_into(
                page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {secret}"})
            )
            await page.locator(QUERY_EDITOR).click()
            await page.wait_for_timeout(800)  # GraphiQL's debounced header handling
            again = await _run_current_tab(page, '"newcomer"')
            assert again["data"]["viewer"] == {
                "authenticated": True,
                "owner": "newcomer",
                "role": "READER",
            }
            await _docs_show_the_query_type(page)

            # A refused token stored in the Headers tab (mistyped, or revoked since):
            # after a reload Docs and autocomplete still have the schema.
            await _type_into(page, HEADERS_EDITOR, json.dumps({"Authorization": "Bearer bg_wrong"}))
            await page.wait_for_timeout(800)
            await page.reload(wait_until="load")
            await page.locator(QUERY_EDITOR).wait_for(state="visible")
            await _docs_show_the_query_type(page)
            assert not failed, f"requests failed: {failed}"
            assert not errors, f"the page raised: {errors}"
        finally:
            await browser.close()


@pytest.mark.browser
async def test_graphiql_runs_queries_in_a_real_browser(live_server: str, db: Database) -> None:
    chromium = _chromium()
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    _, secret = await make_token(db, role=TokenRole.READER, owner="browser-user")
    await make_task_type(db, "t")
    batch = await make_batch(
        db, {"recipe": {"nodes": [{"name": "n", "taskType": "t"}]}, "inputs": [{}]}
    )
    batch_gid = base64.b64encode(f"Batch:{batch.id}".encode()).decode()
    origin = urlsplit(live_server)

    async with asyncio.timeout(TEST_TIMEOUT_S), async_playwright() as p:
        try:
            browser = await p.chromium.launch(
                headless=True, executable_path=chromium, args=CHROMIUM_ARGS, timeout=20_000
            )
        except PlaywrightError as exc:
            require_service("Chromium", f"{chromium} does not start: {exc}")
        try:
            context = await browser.new_context()
            context.set_default_timeout(ACTION_TIMEOUT_MS)
            page = await context.new_page()
            requested: list[str] = []
            failed: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            page.on("websocket", lambda ws: requested.append(ws.url))
            page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
            page.on("pageerror", lambda e: errors.append(str(e)))

            response = await page.goto(f"{live_server}/graphql", wait_until="load")
            assert response is not None
            assert response.status == 200
            assert "text/html" in response.headers["content-type"]
            await page.locator(QUERY_EDITOR).wait_for(state="visible")
            await page.locator(RESULT_EDITOR).wait_for(state="attached")
            assert "Loading…" not in await page.locator("#graphiql").inner_text()
            # The first tab is the preloaded WhoAmI example.
            assert "query WhoAmI" in await _editor_value(page, QUERY_EDITOR)

            await page.locator('.graphiql-editor-tools button[data-name="headers"]').click()
            await page.locator(HEADERS_EDITOR).wait_for(state="visible")

            # Anonymous. (GraphiQL 3.8 leaves this editor empty on first load even though
            # the first example tab carries a placeholder token; set it explicitly.)
            await _type_into(page, HEADERS_EDITOR, "{}")
            headers, result = await _execute(
                page, "{ viewer { authenticated } }", '"authenticated": false'
            )
            assert "authorization" not in headers
            assert result["data"] == {"viewer": {"authenticated": False}}

            # With a token typed into the Headers editor.
            await _type_into(
                page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {secret}"})
            )
            headers, result = await _execute(
                page, "{ viewer { authenticated owner role } }", "browser-user"
            )
            assert headers.get("authorization") == f"Bearer {secret}"
            assert result["data"] == {
                "viewer": {"authenticated": True, "owner": "browser-user", "role": "READER"}
            }

            # A subscription through GraphiQL: the page's websocket carries the token
            # from the Headers tab, and the live counters arrive in the result pane.
            headers, result = await _execute(
                page,
                f'subscription {{ batchProgress(batch: "{batch_gid}") '
                "{ isCreationDone counters { queued } } }",
                '"queued": 1',
                expect_post=False,
            )
            assert result["data"] == {
                "batchProgress": {"isCreationDone": True, "counters": {"queued": 1}}
            }

            assert requested, "the page made no requests at all"
            foreign = [
                url
                for url in requested
                if urlsplit(url).hostname != origin.hostname or urlsplit(url).port != origin.port
            ]
            assert not foreign, f"requests left the server's origin: {foreign}"
            assert not failed, f"requests failed: {failed}"
            assert not errors, f"the page raised: {errors}"
        finally:
            await browser.close()
