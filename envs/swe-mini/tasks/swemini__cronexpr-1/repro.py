from datetime import datetime

from cronexpr import next_runs, parse

expr = parse("0 0 1 */3 *")
print("months:", sorted(expr.months), "(expected [1, 4, 7, 10])")
print("days of */2:", sorted(parse("0 0 */2 * *").days)[:4], "(expected [1, 3, 5, 7])")
print("next runs:", [d.strftime("%Y-%m-%d") for d in next_runs(expr, datetime(2024, 1, 15), 3)])
