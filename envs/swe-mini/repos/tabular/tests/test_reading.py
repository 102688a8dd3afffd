from datetime import date

import pytest

from tabular import Dialect, read_csv, sniff, split_line
from tabular.types import infer_column_type, parse_value


def test_split_line_handles_quotes_and_doubled_quotes():
    assert split_line('a,"b,c","say ""hi"""') == ["a", "b,c", 'say "hi"']


def test_split_line_unterminated_quote_raises():
    with pytest.raises(ValueError):
        split_line('a,"b')


def test_sniff_semicolon_with_header():
    text = "name;qty;price\napple;3;1.25\npear;2;0.5\n"
    assert sniff(text) == Dialect(delimiter=";", quotechar='"', has_header=True)


def test_sniff_ignores_delimiters_inside_quotes():
    text = 'city|note\n"Paris"|"a, b, c"\n"Rome"|"d, e"\n'
    assert sniff(text).delimiter == "|"


def test_sniff_detects_missing_header():
    text = "apple,3,1.25\npear,2,0.5\n"
    assert sniff(text).has_header is False


def test_infer_column_types():
    assert infer_column_type(["1", "2", ""]) == "int"
    assert infer_column_type(["1", "2.5"]) == "float"
    assert infer_column_type(["yes", "No", "NA"]) == "bool"
    assert infer_column_type(["2024-01-31", "2023-12-01"]) == "date"
    assert infer_column_type(["1", "x"]) == "str"
    assert infer_column_type(["", "null"]) == "str"


def test_parse_value_rejects_nan_and_underscores():
    assert parse_value("nan") == "nan"
    assert parse_value("1_000") == "1_000"
    assert parse_value("1e3") == 1000.0


def test_read_csv_converts_types():
    table = read_csv("name,qty,price,day\napple,3,1.25,2024-02-01\npear,,0.5,2024-02-02\n")
    assert table.columns == ["name", "qty", "price", "day"]
    assert table.types == {"name": "str", "qty": "int", "price": "float", "day": "date"}
    assert table.rows[0] == ["apple", 3, 1.25, date(2024, 2, 1)]
    assert table.rows[1] == ["pear", None, 0.5, date(2024, 2, 2)]


def test_read_csv_without_header_names_columns():
    table = read_csv("1,2\n3,4\n", dialect=Dialect(has_header=False))
    assert table.columns == ["col1", "col2"]
    assert table.column("col2") == [2, 4]


def test_read_csv_pads_short_rows_and_rejects_long_rows():
    table = read_csv("a,b,c\n1,2\n", dialect=Dialect())
    assert table.rows == [[1, 2, None]]
    with pytest.raises(ValueError):
        read_csv("a,b\n1,2,3\n", dialect=Dialect())


def test_read_csv_without_type_inference_keeps_strings():
    table = read_csv("a,b\n1,x\n", dialect=Dialect(), infer_types=False)
    assert table.rows == [["1", "x"]]
