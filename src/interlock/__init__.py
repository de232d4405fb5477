"""Interlock: a safety gateway between AI agents and production systems."""

__version__ = "0.1.0"
