"""What a search for credentials looks like, whichever door it comes through (DESIGN.md §9: judges are shared).

`grep -ri password /etc/app` in a shell line and an MCP `grep` tool given `{"pattern": "password"}` print
the same lines: every credential written down beside the word (MITRE ATT&CK T1552.001, credentials in
files). Both are judged as disclosing secrets (at least write + `secrets`) by the words below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Words of a search for credentials (`password`, `api[_-]?key`, `BEGIN RSA PRIVATE KEY`). Bounded by
#: non-letters so `tokenizer` or `secretary` stay ordinary words; bare `pass` is left out (test results say
#: PASS). `.{0,6}` lets a regex's own punctuation sit between the halves of `api_key`.
HUNTED = re.compile(
    r"(?i)(?<![a-z])(?:passwd|passwords?|passphrases?|pwd|secrets?|tokens?|credentials?|bearer|"
    r"private.{0,3}keys?|api.{0,6}keys?|access.{0,3}keys?|auth.{0,3}keys?)(?![a-z])"
)


def hunted(texts: Iterable[str]) -> str | None:
    """The first of `texts` that searches for credentials, or None."""
    return next((text for text in texts if HUNTED.search(text)), None)
