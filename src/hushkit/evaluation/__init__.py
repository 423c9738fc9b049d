"""Evaluation: scoring systems, aggregating with intervals, plots and the listening report."""
