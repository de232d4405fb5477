"""The one JSON response class every route answers with."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class JSON(JSONResponse):
    """orjson-rendered JSON (FastAPI's ORJSONResponse is deprecated; this is the same ten lines). A
    JSONResponse, so /openapi.json says the answers are JSON objects (a plain Response is documented as a
    string, which every answer then contradicts)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
