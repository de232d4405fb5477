"""`tries.trie_pattern`: the same answer as "is any of these words in the text", for the redactor's keywords
and the path judges' needles, which search with it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.tries import trie_pattern


@pytest.mark.parametrize(("words", "text", "found"), [
    (["id_rsa", "id_dsa", ".ssh/"], "cat ~/.ssh/config", ".ssh/"),
    (["id_rsa", "id_rsa.pub"], "cat id_rsa.pub", "id_rsa.pub"),  # the longer word where both start
    ([".bash_history", ".history"], "tail ~/.history", ".history"),
    (["a.b", "a*b"], "axb", None),  # literal text: regex characters are escaped
    (["token"], "TOKEN", None),  # case is the caller's business (the needles are searched lower-case)
])
def test_finds_a_word(words: list[str], text: str, found: str | None) -> None:
    match = re.search(trie_pattern(words), text)
    assert (match.group(0) if match else None) == found


@given(st.lists(st.text(alphabet="ab.-_/", min_size=1, max_size=5), min_size=1, max_size=8),
       st.text(alphabet="ab.-_/ x", max_size=30))
def test_any_word_found_as_the_alternation_finds_it(words: list[str], text: str) -> None:
    assert (re.search(trie_pattern(words), text) is not None) == any(word in text for word in words)
