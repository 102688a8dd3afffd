"""cronexpr - parse, schedule and describe 5-field cron expressions."""

from cronexpr.errors import CronError, CronSyntaxError
from cronexpr.parser import CronExpr, is_valid, parse
from cronexpr.schedule import matches, next_run, next_runs
from cronexpr.describe import describe

__version__ = "0.3.0"

__all__ = [
    "CronError", "CronExpr", "CronSyntaxError", "describe", "is_valid",
    "matches", "next_run", "next_runs", "parse",
]
