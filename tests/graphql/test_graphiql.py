"""GraphiQL is served with its own assets: no CDN, byte-identical files."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx

from graphql_api.graphiql import ASSETS_DIR, EXAMPLES, WELCOME

# The sha384 integrity hashes of the CDN files these are copies of.
INTEGRITY = {
    "react.production.min.js": "tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    "react-dom.production.min.js": (
        "bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"
    ),
    "js.cookie.min.js": "/vxhYfM1LENRhdpZ8dwEsQn/X4VhpbEZSiU4m/FwR+PVpzar4fkEOw8FP9Y+OfQN",
    "graphiql.min.css": "Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
    "plugin-explorer.css": "5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
    "graphiql.min.js": "HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    "plugin-explorer.umd.js": "2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
}


async def test_page_references_only_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    # The example tabs' documents hold URLs as data (inputs); nothing else may.
    code = re.sub(r"var examples = \[.*?\];\n", "", page.text, flags=re.S)
    assert not re.search(r"https?://", code), "no absolute URL may appear in the page"
    referenced = set(re.findall(r'(?:src|href)="/graphiql-assets/([^"]+)"', page.text))
    assert referenced == set(INTEGRITY)
    for name in referenced:
        asset = await client.get(f"/graphiql-assets/{name}")
        assert asset.status_code == 200, name
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert digest == INTEGRITY[name], f"{name} differs from the published file"


def _page_tabs(html: str) -> list[dict[str, str]]:
    found = re.search(r"var examples = (\[.*?\]);\n", html, flags=re.S)
    assert found, "the page carries its example tabs"
    return json.loads(found.group(1).replace("<\\/", "</"))  # type: ignore[no-any-return]


async def test_page_opens_without_a_placeholder_header(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert "PASTE_YOUR_TOKEN" not in page.text
    assert 'defaultHeaders: ""' in page.text
    tabs = _page_tabs(page.text)
    assert all(set(tab) == {"query"} for tab in tabs), "no tab carries headers"
    assert "Headers tab" in tabs[0]["query"]  # the welcome says where a token goes


async def test_example_tabs_are_the_readmes_operations_and_valid(
    client: httpx.AsyncClient,
) -> None:
    from graphql import parse, validate

    from graphql_api.schema import build_schema
    from graphql_api.settings import Limits
    from tests.graphql.test_readme import walkthrough

    readme = dict(walkthrough())
    page = await client.get("/graphql", headers={"accept": "text/html"})
    tabs = _page_tabs(page.text)
    assert [t["query"].removeprefix(WELCOME) for t in tabs] == [e.query for e in EXAMPLES]
    schema = build_schema(Limits.from_env())._schema
    for example in EXAMPLES:
        assert example.query == readme[example.name], f"{example.name} differs from the README"
        document = parse(example.query)
        assert validate(schema, document) == [], example.name
        # Runnable as written against a fresh server: no variables, so no ids to invent.
        assert all(not op.variable_definitions for op in document.definitions), example.name  # type: ignore[attr-defined]
    assert EXAMPLES[0].name == "WhoAmI"


def test_assets_ship_with_their_licences() -> None:
    licences = (ASSETS_DIR / "LICENSES.txt").read_text()
    for package in ("graphiql", "react", "react-dom", "js-cookie", "plugin-explorer"):
        assert package in licences
