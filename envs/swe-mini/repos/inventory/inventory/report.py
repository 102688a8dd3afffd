"""CSV-style report formatting."""


def _escape(value, delimiter):
    """Render one cell, quoting it when it contains special characters."""
    if value is None:
        return ""
    text = str(value)
    if delimiter in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


def format_csv(headers, rows, delimiter=","):
    """Format ``rows`` (sequences of cells) under ``headers`` as CSV text.

    Lines end with ``\\n``; the result ends with a newline.
    """
    if len(delimiter) != 1:
        raise ValueError("delimiter must be a single character")
    width = len(headers)
    out = [delimiter.join(_escape(h, delimiter) for h in headers)]
    for number, row in enumerate(rows, start=1):
        row = list(row)
        if len(row) != width:
            raise ValueError(f"row {number} has {len(row)} cells, expected {width}")
        out.append(delimiter.join(_escape(cell, delimiter) for cell in row))
    return "\n".join(out) + "\n"


def stock_report(ledger, delimiter=","):
    """One row per (SKU, warehouse): on hand, reserved and available stock."""
    headers = ["sku", "name", "warehouse", "on_hand", "reserved", "available"]
    rows = []
    for item in ledger.catalog:
        for warehouse in ledger.warehouses(item.sku):
            rows.append([
                item.sku,
                item.name,
                warehouse,
                ledger.on_hand(item.sku, warehouse),
                ledger.reserved(item.sku, warehouse),
                ledger.available(item.sku, warehouse),
            ])
    return format_csv(headers, rows, delimiter)


def quote_report(quote, delimiter=","):
    """Quote lines followed by a TOTAL row."""
    headers = ["sku", "quantity", "unit_price", "subtotal", "discount", "tax", "total"]
    rows = [
        [line.sku, line.quantity, line.unit_price, line.subtotal,
         line.discount, line.tax, line.total]
        for line in quote.lines
    ]
    rows.append(["TOTAL", "", "", quote.subtotal, quote.discount, quote.tax, quote.total])
    return format_csv(headers, rows, delimiter)
