from tabular import Table, render
from tabular.render import truncate


def sample():
    return Table(
        ["name", "qty", "ok"],
        [["apple", 3, True], ["kiwi", 12, None]],
        {"name": "str", "qty": "int", "ok": "bool"},
    )


def test_render_plain_aligns_numbers_right():
    assert render(sample()) == (
        "name   qty  ok\n"
        "-----  ---  ----\n"
        "apple    3  true\n"
        "kiwi    12"
    )


def test_render_plain_custom_none_and_alignment():
    out = render(sample(), align={"name": "right"}, none="-")
    assert out.splitlines()[3] == " kiwi   12  -"


def test_render_markdown_alignment_row():
    assert render(sample(), fmt="markdown") == (
        "| name  | qty | ok   |\n"
        "| ----- | --: | ---- |\n"
        "| apple |   3 | true |\n"
        "| kiwi  |  12 |      |"
    )


def test_render_markdown_center():
    table = Table(["x"], [["ab"]])
    assert render(table, fmt="markdown", align={"x": "center"}).splitlines()[1] == "| :-: |"


def test_truncate_marks_cut():
    assert truncate("abcdef", 4) == "abc\u2026"
    assert truncate("abc", 4) == "abc"
    assert len(render(Table(["long"], [["x" * 20]]), max_width=5).splitlines()[2]) == 5


def test_render_unknown_format():
    import pytest

    with pytest.raises(ValueError):
        render(sample(), fmt="html")
