from moneyfmt import Money, allocate, split

parts = split(Money("-10", "USD"), 3)
print("split(-10 USD, 3):", parts)
print("sum:", sum(parts), "(expected -10.00 USD)")
print("allocate(-0.05 USD, [3, 7]):", allocate(Money("-0.05", "USD"), [3, 7]))
