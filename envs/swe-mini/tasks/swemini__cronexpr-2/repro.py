from datetime import datetime

from cronexpr import next_run, next_runs

print("@yearly:", next_runs("@yearly", datetime(2024, 3, 1), 2))
print("Q1 at 08:00:", next_run("0 8 * 1-3 *", datetime(2024, 11, 20)))
