"""Check conditions: small expressions over a measurement, parsed when the rollout is submitted.

    status == 200 and json.healthy == true and latency_ms < 500
    result < 0.05
    exit_code == 0

Allowed: comparisons (== != < <= > >= in), `and` / `or` / `not`, numbers, strings, true/false/null,
names of the measurement's fields and `a.b` / `a["b"]` into JSON. Nothing else parses (no calls,
no attribute of anything but data): a condition is data, never code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_WORDS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}


class ConditionError(ValueError):
    """A condition that does not parse or names something not allowed."""


class Missing(Exception):
    """The measurement has no such field: the measurement is an Error, never a success."""


@dataclass(frozen=True)
class Condition:
    text: str
    tree: ast.expr

    def __call__(self, values: dict[str, Any]) -> bool:
        return bool(_eval(self.tree, values))


def parse(text: str) -> Condition:
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ConditionError(f"condition {text!r} does not parse at column {exc.offset}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr | ast.cmpop | ast.boolop | ast.unaryop | ast.expr_context) or \
                isinstance(node, ast.Call | ast.Lambda | ast.Await | ast.NamedExpr | ast.ListComp | ast.DictComp
                           | ast.SetComp | ast.GeneratorExp | ast.Starred | ast.JoinedStr | ast.FormattedValue
                           | ast.IfExp | ast.Dict | ast.Set | ast.Slice | ast.BinOp):
            raise ConditionError(f"condition {text!r} uses {type(node).__name__}, which a condition may not: "
                                 "use comparisons, and/or/not, numbers, strings and field names")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not | ast.USub):
            raise ConditionError(f"condition {text!r}: only `not` and a minus sign are allowed as unary operators")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ConditionError(f"condition {text!r}: field names may not start with `_`")
    return Condition(text, tree)


def _eval(node: ast.expr, values: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _WORDS:
            return _WORDS[node.id]
        if node.id not in values:
            raise Missing(f"the measurement has no {node.id!r} (it has {', '.join(sorted(values))})")
        return values[node.id]
    if isinstance(node, ast.Attribute | ast.Subscript):
        base = _eval(node.value, values)
        key = node.attr if isinstance(node, ast.Attribute) else _eval(node.slice, values)
        if isinstance(base, dict) and key in base:
            return base[key]
        if isinstance(base, list) and isinstance(key, int) and -len(base) <= key < len(base):
            return base[key]
        raise Missing(f"the measurement has no field {key!r} there")
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, values)
        return (not value) if isinstance(node.op, ast.Not) else -value
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values)
            try:
                if not _COMPARE[type(op)](left, right):
                    return False
            except TypeError as exc:
                raise Missing(f"cannot compare {left!r} with {right!r}: {exc}") from None
            left = right
        return True
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, values) for e in node.elts]
    raise Missing(f"{type(node).__name__} is not evaluated in a condition")
