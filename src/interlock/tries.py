"""A regular expression for "any of these words", written as a trie.

`re` tries an alternation's branches one after another at every position of the text: with a few dozen
literal words (the redactor's keywords, the needles of the protected and secret path globs) that is most
of the search. Written as a trie ("a(?:bia|cca|…)|b(?:asic|…)") it follows one branch per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def trie_pattern(words: Iterable[str]) -> str:
    """A pattern matching any of `words` (literal text), as a trie: a third of the time of the plain
    alternation over an audit entry's strings (audit/redact.py), ~5% of a shell line's classification
    with the secret paths' needles (classify/paths.py)."""
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # a word ends here

    def pattern(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + pattern(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(tree)
