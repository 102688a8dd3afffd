from decimal import Decimal

from inventory import Item, PriceList, Tier

prices = PriceList([Tier(100, Decimal("0.05"))])
bolt = Item("BOLT-M6", "M6 bolt", Decimal("0.25"))
print("rate at 100:", prices.discount_rate(100))
print("rate at 101:", prices.discount_rate(101))
print("total for 100:", prices.price_line(bolt, 100).total, "(expected 23.75)")
