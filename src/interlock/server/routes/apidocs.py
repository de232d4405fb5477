"""`/docs`: the API reference as one self-contained page, readable without internet.

FastAPI's Swagger UI and ReDoc pages load their JavaScript from a CDN, so behind a firewall (where a
gateway to production usually runs) they are blank. This page is plain HTML built from the same
OpenAPI document, with no script and no external asset; the document itself is at `/openapi.json`
for any OpenAPI viewer or client generator.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["operations"])

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
          "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;"
          "text-align:left;vertical-align:top}code{background:#f4f4f4;padding:0 .2rem}")


def render(schema: dict[str, Any]) -> str:
    rows = []
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            summary = op.get("summary") or ""
            detail = (op.get("description") or "").strip().split("\n\n")[0]
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code></td>"
                        f"<td><b>{escape(summary)}</b><br>{escape(detail)}</td></tr>")
    info = schema.get("info", {})
    return (f"<!doctype html><meta charset=utf-8><title>{escape(info.get('title', 'API'))} API</title>"
            f"<style>{_STYLE}</style><h1>{escape(info.get('title', 'API'))} API "
            f"<small>{escape(str(info.get('version', '')))}</small></h1>"
            f"<p>{escape(info.get('description', ''))}</p>"
            "<p>The full OpenAPI document (request and answer schemas) is at <a href=/openapi.json>"
            "<code>/openapi.json</code></a>: open it in any OpenAPI viewer or client generator. This page "
            "needs no internet. Agents and humans authenticate with <code>Authorization: Bearer TOKEN</code>"
            " (<code>interlock token create</code>).</p>"
            "<table><tr><th>method</th><th>path</th><th>what it does</th></tr>" + "".join(rows) + "</table>")


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return HTMLResponse(render(request.app.openapi()))
