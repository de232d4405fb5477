"""Secret redaction: applied to every audit entry before it is written, usable by any log writer.

`redact(value)` walks dicts, lists and strings and replaces secrets with "[REDACTED]":
values under secret-sounding keys (password, token, secret, api_key, authorization, …) and,
inside any string, common credential formats: passwords in connection strings, `password=`
style assignments, bearer/basic authorization, AWS access keys and secret keys, PEM private
keys, GitHub/Slack/OpenAI-style tokens and JWTs. A `Redactor` adds configured patterns.

Redaction errs on the side of hiding: a false positive costs a less readable log entry, a
false negative leaks a credential into an append-only log that can never be cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import regex

from interlock.tries import trie_pattern

MASK = "[REDACTED]"

#: Keys whose whole value is secret, wherever they appear in a structure (case-insensitive).
SECRET_KEYS = re.compile(
    r"(?i)^(.*[_-])?(password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"secret[_-]?key|private[_-]?key|client[_-]?secret|auth|authorization|cookie|set-cookie|credentials?|"
    r"session[_-]?id|dsn|connection[_-]?string)$"
)



def secret_key(key: str) -> bool:
    """Is `key` a secret-sounding name (its whole value is masked)? Cached: an entry's keys repeat."""
    known = _SECRET_KEY_SEEN.get(key)
    if known is None:
        known = SECRET_KEYS.match(key) is not None
        if len(_SECRET_KEY_SEEN) < 4096:  # bounded: arbitrary payload keys must not grow it forever
            _SECRET_KEY_SEEN[key] = known
    return known


_SECRET_KEY_SEEN: dict[str, bool] = {}
#: Strings up to this length that redaction left unchanged are remembered, up to this many per generation
#: (two generations: see Redactor.safe_text).
_REMEMBER_UP_TO = 256
_REMEMBER_MOST = 4096

_SECRET_WORDS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "private_key",
    "private-key",
    "auth",
)
_AWS_PREFIXES = ("akia", "asia", "agpa", "aida", "aroa", "anpa", "anva", "aipa", "abia", "acca")

# (keywords, pattern, replacement): a pattern runs only on strings containing one of its keywords
# (lower-cased), which keeps redaction cheap for the common, secret-free string. Group 1, when
# present, is kept (the label before the secret).
_BUILTIN: list[tuple[tuple[str, ...], str, str]] = [
    # PEM private keys (RSA, EC, OPENSSH, ENCRYPTED, …), whole block.
    (
        ("private key",),
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
        MASK,
    ),
    # scheme://user:password@host → keep user and host.
    (("://",), r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]*:)[^\s@'\"]+(@)", r"\1" + MASK + r"\2"),
    # Authorization headers and bearer tokens.
    (("bearer",), r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}", r"\1" + MASK),
    (("basic",), r"(?i)(\bbasic\s+)[A-Za-z0-9+/=]{8,}", r"\1" + MASK),
    # key=value / key: value assignments of secret-sounding names (conninfo, env vars, YAML/JSON). The
    # lookbehind starts the name where its run of name characters starts: where every match began anyway
    # (from inside a run, the lazy prefix could as well have started at the run's start), without trying
    # each position inside the run again (quadratic in the run: ~80 µs for an 80-character command).
    (
        _SECRET_WORDS,
        r"(?i)((?<![A-Za-z0-9_.-])(?:[A-Za-z0-9_.-]*?)(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|access[_-]?key|"
        r"secret[_-]?access[_-]?key|client[_-]?secret|private[_-]?key|auth[_-]?token)[\"']?"
        r"(?:\s*[=:]\s*|\s+(?=[\"']))[\"']?)([^\s\"'&;,]+)",
        r"\1" + MASK,
    ),
    # --password VALUE style flags.
    (_SECRET_WORDS, r"(?i)(--(?:password|passwd|token|secret|api-key|client-secret)[= ])(\S+)", r"\1" + MASK),
    # AWS access key ids and (after a telling label) 40-character secret keys.
    (_AWS_PREFIXES, r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{16}\b", MASK),
    (
        ("aws",),
        r"(?i)(aws.{0,30}?(?:secret|key).{0,10}?[\s=:\"']+)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
        r"\1" + MASK,
    ),
    # Well-known token formats.
    (("gh",), r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", MASK),
    (("github_pat_",), r"\bgithub_pat_[A-Za-z0-9_]{30,}\b", MASK),
    (("xox",), r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b", MASK),
    (("sk-",), r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}\b", MASK),
    (("glpat-",), r"\bglpat-[A-Za-z0-9_-]{20,}\b", MASK),
    (("eyj",), r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\b", MASK),
]


#: Any keyword of a built-in pattern: a string without one skips the builtin patterns.
_ANY_WORD = re.compile(trie_pattern(w for words, _, _ in _BUILTIN for w in words))


class Redactor:
    """Built-in credential patterns plus `patterns` (regular expressions; each whole match is
    replaced). An invalid configured pattern is an error at construction, not a silent skip."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._builtin = [(words, regex.compile(p), r) for words, p, r in _BUILTIN]
        self._any_word = _ANY_WORD
        self._configured: list[regex.Pattern[str]] = []
        #: Short strings `text` left unchanged (see safe_text); the audit log's check reads it directly.
        self.remembered: set[str] = set()
        self._older: set[str] = set()  # the generation before `remembered`
        for pattern in patterns:
            try:
                self._configured.append(regex.compile(pattern))
            except regex.error as exc:
                raise ValueError(
                    f"redaction pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from exc

    def text(self, value: str) -> str:
        lowered = value.lower()
        if self._any_word.search(lowered) is not None:
            for words, pattern, replacement in self._builtin:
                if any(word in lowered for word in words):
                    value = pattern.sub(replacement, value, timeout=1.0)
        for configured in self._configured:
            value = configured.sub(MASK, value, timeout=1.0)
        return value

    def safe_text(self, value: str) -> str:
        """`text`, or the mask when the string is pathological (a pattern timed out): hide it rather
        than risk a leak. Short strings found clean are remembered: most of an audit entry's strings
        (event names, risks, rule ids, reasons, policy versions) repeat from entry to entry, and the
        redaction search was most of the cost of building one. A string that was redacted is never
        remembered, so the memory holds no secret the log would not."""
        if value in self.remembered:
            return value
        if value in self._older:  # found clean a generation ago and still in use: carried over
            self._remember(value)
            return value
        try:
            out = self.text(value)
        except TimeoutError:
            return MASK
        if out is value and len(value) <= _REMEMBER_UP_TO:
            self._remember(value)
        return out

    def _remember(self, value: str) -> None:
        """Bounded by generations: when `remembered` is full it becomes the older generation and a new one
        starts, so strings that stop repeating (action ids, one-off commands) age out in two turns while those
        in use are carried over; an emptied memory would search every policy word again."""
        if len(self.remembered) >= _REMEMBER_MOST:
            self._older, self.remembered = self.remembered, set()
        self.remembered.add(value)

    def __call__(self, value: Any) -> Any:
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.safe_text(value)
        if isinstance(value, Mapping):
            return {
                k: (
                    MASK
                    if isinstance(k, str) and secret_key(k) and v not in (None, "")
                    else self._walk(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(v) for v in value]
        return value


_DEFAULT = Redactor()


def redact(value: Any, patterns: Iterable[str] = ()) -> Any:
    """A copy of `value` (str, dict, list, scalars) with secrets replaced by "[REDACTED]"."""
    return (Redactor(patterns) if patterns else _DEFAULT)(value)
