"""The decision report: one self-contained HTML file with what a model change is signed off on (`build_report`)."""

from engine.report.build import REPORT_FILE_NAME, ReportError, build_report, check_question

__all__ = ["REPORT_FILE_NAME", "ReportError", "build_report", "check_question"]
