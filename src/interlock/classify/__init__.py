"""Classifiers: what would an action do? See docs/classifiers.md."""

from interlock.classify.registry import (
    ClassifyContext,
    classifier_for,
    classify,
    payload_from_input,
    register,
    unknown,
)

__all__ = ["ClassifyContext", "classifier_for", "classify", "payload_from_input", "register", "unknown"]
