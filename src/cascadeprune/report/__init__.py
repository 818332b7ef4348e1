"""Reports: JSON + Markdown + plots."""

from cascadeprune.report.compress_report import write_report

__all__ = ["write_report"]
