from moneyfmt import Money, format_money

print(format_money(Money("100", "USD")), "(expected $100.00)")
print(format_money(Money("250000", "EUR"), "de_DE"), "(expected 250.000,00 €)")
print(format_money(Money("-999.99", "USD"), negative="parens"), "(expected ($999.99))")
