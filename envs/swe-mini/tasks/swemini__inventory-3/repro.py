import csv
import io

from inventory import Catalog, Item, StockLedger, stock_report

catalog = Catalog([Item("PIPE-12", '12" steel pipe', "7.50")])
ledger = StockLedger(catalog)
ledger.receive("PIPE-12", "north", 3)
text = stock_report(ledger)
print(text)
print("parsed row:", list(csv.reader(io.StringIO(text)))[1])
print("expected:  ", ["PIPE-12", '12" steel pipe', "north", "3", "0", "3"])
