from pocketlib import shout, slugify


def test_shout():
    assert shout("hi") == "HI!"


def test_slugify():
    assert slugify("Hello, World 2") == "hello-world-2"
