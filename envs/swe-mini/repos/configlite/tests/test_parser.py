import pytest

from configlite import ParseError, dump, parse


SAMPLE = """\
# global comment
[server]
host = example.org   ; the public name
port: 8080

; another comment
[Paths]
root = /srv/app
motd = Welcome
    to the server
"""


def test_parse_sections_and_keys():
    data = parse(SAMPLE)
    assert list(data) == ["server", "Paths"]
    assert data["server"] == {"host": "example.org", "port": "8080"}


def test_inline_comment_is_stripped():
    assert parse(SAMPLE)["server"]["host"] == "example.org"


def test_hash_without_space_is_kept():
    data = parse("[a]\ncolor = #ff0000\nurl = http://x/#frag\n")
    assert data["a"]["color"] == "#ff0000"
    assert data["a"]["url"] == "http://x/#frag"


def test_continuation_lines_are_joined():
    assert parse(SAMPLE)["Paths"]["motd"] == "Welcome\nto the server"


def test_keys_are_lowercased():
    assert parse("[s]\nMaxSize = 3\n")["s"] == {"maxsize": "3"}


def test_first_separator_wins():
    data = parse("[s]\nlink = ${other:key}\ntime: 12:30\n")
    assert data["s"]["link"] == "${other:key}"
    assert data["s"]["time"] == "12:30"


def test_repeated_section_extends_and_key_overrides():
    data = parse("[s]\na = 1\nb = 2\n[t]\nx = 0\n[s]\na = 3\n")
    assert data["s"] == {"a": "3", "b": "2"}


def test_option_outside_section_raises_with_line_number():
    with pytest.raises(ParseError) as info:
        parse("\n\nkey = value\n")
    assert info.value.lineno == 3


def test_line_without_separator_raises():
    with pytest.raises(ParseError):
        parse("[s]\njust some words\n")


def test_dump_round_trip():
    data = parse(SAMPLE)
    assert parse(dump(data)) == data


def test_dump_empty():
    assert dump({}) == ""
