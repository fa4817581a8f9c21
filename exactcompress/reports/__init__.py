"""Rendering: report.md/.html of one model, zoo summaries, study tables and figures."""
