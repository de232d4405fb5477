"""The policy: load (YAML → model, located errors), decide (pure), inline tests. See docs/policy.md."""

from interlock.policy.engine import action_text, decide
from interlock.policy.load import (
    Policy,
    PolicyError,
    Problem,
    check_policy_text,
    load_policy,
    load_policy_text,
)
from interlock.policy.testing import TestResult, context_for, run_tests

__all__ = [
    "Policy",
    "PolicyError",
    "Problem",
    "TestResult",
    "action_text",
    "check_policy_text",
    "context_for",
    "decide",
    "load_policy",
    "load_policy_text",
    "run_tests",
]
