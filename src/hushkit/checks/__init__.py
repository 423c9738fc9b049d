"""Data checks: measure files/arrays into rows (`stats`), check them with GX suites (`suites`) via `validate`.

Importing this package does not import great_expectations; that happens on the first suite or validation.
"""
from hushkit.checks import suites
from hushkit.checks.gx import DataCheckError, validate
from hushkit.checks.stats import array_stats, audio_file_stats

__all__ = ["DataCheckError", "array_stats", "audio_file_stats", "suites", "validate"]
