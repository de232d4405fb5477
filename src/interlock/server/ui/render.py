"""Pure helpers for the console's pages: the payload highlighted, a terraform plan as rows, times.

Everything an agent wrote reaches the page either through Jinja2's autoescaping or through Pygments'
HTML formatter, which escapes every token: no agent value is ever inserted as markup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import BashLexer, JsonLexer, SqlLexer

from interlock.classify.terraform import read_change

_FORMATTER = HtmlFormatter(nowrap=True)
#: Which payload field holds the text a reviewer must read, per kind, and how to colour it.
_TEXT_FIELDS: dict[str, tuple[str, type[Lexer]]] = {
    "shell": ("command", BashLexer),
    "kubectl": ("command", BashLexer),
    "aws": ("command", BashLexer),
    "sql": ("sql", SqlLexer),
}


@dataclass(frozen=True)
class Block:
    label: str
    html: Markup


def payload_blocks(kind: str, payload: dict[str, Any]) -> list[Block]:
    """The payload as a reviewer reads it: the command or SQL highlighted, then the whole payload as
    JSON (exactly what will run; nothing is left out)."""
    blocks: list[Block] = []
    field = _TEXT_FIELDS.get(kind)
    if field is not None and isinstance(payload.get(field[0]), str):
        blocks.append(Block(field[0], colour(payload[field[0]], field[1]())))
    shown = {k: v for k, v in payload.items() if k != "plan"} if kind == "terraform" else payload
    if shown:
        blocks.append(Block("payload (JSON)", colour(json.dumps(shown, indent=2, ensure_ascii=False,
                                                               sort_keys=True), JsonLexer())))
    return blocks


def colour(text: str, lexer: Lexer) -> Markup:
    # Pygments escapes &, <, >, " and ' in every token it emits; the result is safe markup.
    return Markup(highlight(text, lexer, _FORMATTER))


@dataclass(frozen=True)
class PlanRow:
    address: str
    action: str  # create | update | delete | replace | read | no-op | forget | import
    reason: str

    @property
    def marked(self) -> bool:
        """Rows a reviewer must not miss: something is destroyed."""
        return self.action in ("delete", "replace", "forget", "unreadable")


def plan_rows(payload: dict[str, Any]) -> list[PlanRow] | None:
    """A terraform plan's resource changes (deletes and replaces first), or None when there is no plan."""
    plan = payload.get("plan")
    if not isinstance(plan, dict) or not isinstance(plan.get("resource_changes"), list):
        return None
    rows: list[PlanRow] = []
    for change in plan["resource_changes"]:
        read = read_change(change)
        if read is None:
            address = change.get("address") if isinstance(change, dict) else None
            rows.append(PlanRow(str(address or "?"), "unreadable", "this change could not be read: "
                                "treat it as destructive"))
            continue
        rows.append(PlanRow(*read))
    order = {"replace": 0, "delete": 1, "forget": 2, "unreadable": 3}
    return sorted(rows, key=lambda r: (order.get(r.action, 9), r.address))


def time_left(seconds: int) -> str:
    if seconds <= 0:
        return "expired"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def one_line(kind: str, payload: dict[str, Any], limit: int = 140) -> str:
    """The action in one line for the queue (escaped by the template)."""
    field = _TEXT_FIELDS.get(kind)
    text = payload.get(field[0]) if field else None
    if not isinstance(text, str):
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pygments_css() -> str:
    return str(_FORMATTER.get_style_defs(".hl"))
