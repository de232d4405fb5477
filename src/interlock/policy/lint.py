"""`interlock policy lint`: every problem of a policy file, errors and warnings, located."""

from __future__ import annotations

from pathlib import Path

from interlock.policy.load import MAX_POLICY_BYTES, UNSATISFIABLE, Problem, check_policy_text

#: Severities that make `policy lint` fail. An approval that can never be gathered is one of them; the
#: server only warns about it at start (docs/design-deviations.md).
LINT_ERRORS = ("error", UNSATISFIABLE)


def lint_file(path: str | Path) -> list[Problem]:
    file = str(path)
    try:
        if Path(path).stat().st_size > MAX_POLICY_BYTES:
            return [Problem(file, 1, 1, f"policy file is larger than {MAX_POLICY_BYTES // 1024} KiB")]
        text = Path(path).read_bytes()
    except OSError as exc:
        return [Problem(file, 1, 1, f"cannot read the policy: {exc.strerror or exc}")]
    problems, _ = check_policy_text(text, file)
    return problems
