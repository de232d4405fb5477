"""A shell line's judging budget is CPU time, not the wall clock: a busy machine must not change a judgement."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from interlock.classify import budget
from interlock.classify.registry import classify
from interlock.model import Kind, Risk


def test_waiting_is_not_spent() -> None:
    start = budget.spent()
    time.sleep(0.2)  # a thread descheduled by a busy machine spends nothing
    assert budget.spent() - start < 0.05


def test_first_use_loading_is_not_counted() -> None:
    start = budget.spent()
    with budget.not_counted():
        deadline = time.thread_time() + 0.1
        while time.thread_time() < deadline:  # CPU work standing in for building a table once
            pass
    assert budget.spent() - start < 0.05


def test_the_budget_is_per_thread() -> None:
    spent_elsewhere: list[float] = []

    def busy() -> None:
        start = budget.spent()
        with budget.not_counted():
            deadline = time.thread_time() + 0.1
            while time.thread_time() < deadline:
                pass
        spent_elsewhere.append(budget.spent() - start)

    mine = budget.spent()
    worker = threading.Thread(target=busy)
    worker.start()
    worker.join()
    assert spent_elsewhere[0] < 0.05
    assert budget.spent() - mine < 0.05


def test_the_first_aws_line_of_a_process_is_judged_like_every_later_one() -> None:
    # Loading the IAM catalog takes about 0.45 s of CPU, nearly the whole budget; a fresh process shows it.
    program = (
        "from interlock.classify.registry import classify\n"
        "from interlock.model import Kind\n"
        "c = classify(Kind.shell, {'command': 'aws ec2 describe-instances --region eu-west-1'})\n"
        "print(c.risk.value, c.summary)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith("read "), done.stdout


def test_hostile_input_still_ends_in_unknown_within_the_budget() -> None:
    started = time.monotonic()
    assert classify(Kind.shell, {"command": "a=(" * 20_000}).risk is Risk.unknown
    assert time.monotonic() - started < 10
