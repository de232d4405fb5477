"""The shell classifier's per-program judges, one module per family of programs.

`judge_argv` (dispatch.py) takes one command's words after parsing (quotes removed, expansions
marked) and answers what running it would do. It looks through wrappers (`sudo`, `env`,
`timeout`, …), then asks the judge registered for the program. A program with no judge and not
in `READ_ONLY` is `unknown`: we never assume a program we do not know is harmless.

Decisions worth knowing (see docs/classifiers.md):
- deleting anything (`rm`, `rmdir`, `shred`, `truncate`) is `destructive`; recursive or
  `/`, `~`, `*` adds `mass`.
- `mv`/`cp`/`ln` are `write`; `mv -f`, `ln -f` and any of them onto a system path are `destructive`
  (they replace what was there). Plain `mv` may also replace a file: we call it `write` because
  `-f` is the explicit "replace without asking" and `mv` onto a system path is caught separately.
- Stopping or restarting a service, a container or a process is `destructive` (an outage);
  starting one is `write`.
- A write whose destination comes from an expansion (`> $OUT`) is `unknown`: it could be anywhere.
"""

from interlock.classify.programs.base import JUDGES, TTY, Judgement, Stdin, Word, worst
from interlock.classify.programs.dispatch import READ_ONLY, judge_argv, program_name
from interlock.classify.programs.targets import (
    LINE,
    WORKING_DIR,
    LineFacts,
    change_dir,
    in_scratch_word,
    names_secret,
    write_to,
)
from interlock.classify.programs.wrappers import HIJACK_VARIABLES, controls_changed, hijacks, sets_controls

__all__ = [
    "HIJACK_VARIABLES",
    "JUDGES",
    "LINE",
    "READ_ONLY",
    "TTY",
    "WORKING_DIR",
    "Judgement",
    "LineFacts",
    "Stdin",
    "Word",
    "change_dir",
    "controls_changed",
    "hijacks",
    "in_scratch_word",
    "judge_argv",
    "names_secret",
    "program_name",
    "sets_controls",
    "worst",
    "write_to",
]
