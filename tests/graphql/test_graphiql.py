"""GraphiQL is served with its own assets: no CDN, byte-identical files."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

from graphql_api.graphiql import ASSETS_DIR, EXAMPLES

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
    assert not re.search(r"https?://", page.text), "no absolute URL may appear in the page"
    referenced = set(re.findall(r'(?:src|href)="/graphiql-assets/([^"]+)"', page.text))
    assert referenced == set(INTEGRITY)
    for name in referenced:
        asset = await client.get(f"/graphiql-assets/{name}")
        assert asset.status_code == 200, name
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert digest == INTEGRITY[name], f"{name} differs from the published file"


async def test_page_preloads_the_example_operations(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    for example in EXAMPLES:
        first_operation_line = next(
            line for line in example["query"].splitlines() if line.startswith(("query", "mutation"))
        )
        assert first_operation_line.split("{")[0].strip() in page.text


def test_assets_ship_with_their_licences() -> None:
    licences = (ASSETS_DIR / "LICENSES.txt").read_text()
    for package in ("graphiql", "react", "react-dom", "js-cookie", "plugin-explorer"):
        assert package in licences
