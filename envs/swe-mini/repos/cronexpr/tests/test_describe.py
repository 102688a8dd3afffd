import pytest

from cronexpr import describe, parse


@pytest.mark.parametrize("expression, text", [
    ("*/15 * * * *", "Every 15 minutes"),
    ("30 9 * * MON-FRI", "At 09:30, on Monday through Friday"),
    ("0 9-17 * * 1-5", "At minute 0, during hours 9 through 17, on Monday through Friday"),
    ("0 */6 * * *", "At minute 0, every 6 hours"),
    ("0 0 1,15 * *", "At 00:00, on days 1 and 15 of the month"),
    ("0 0 1,15 * MON", "At 00:00, on days 1 and 15 of the month or on Monday"),
    ("0,30 8 * JAN,JUL *", "At minutes 0 and 30, during hour 8, in January and July"),
])
def test_describe(expression, text):
    assert describe(expression) == text


def test_describe_accepts_parsed_expression():
    assert describe(parse("0 12 * * 7")) == "At 12:00, on Sunday"
