from moneyfmt import Money, ParseError, format_money, parse_money

for text, locale in [(format_money(Money("1234.5", "BRL"), "pt_BR"), "pt_BR"), ("CA$12.00", "en_US")]:
    try:
        print(repr(text), "->", repr(parse_money(text, locale)))
    except ParseError as exc:
        print(repr(text), "-> ParseError:", exc)
