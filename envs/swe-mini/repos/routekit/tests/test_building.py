import pytest

from routekit import BuildError, Router
from routekit.urls import add_query, encode_query, join_paths


def make_router():
    router = Router()

    @router.route("/users/<int:id>")
    def user(id):
        return id

    router.add("/search", endpoint="search")
    router.add("/files/<path:rest>", endpoint="files")
    router.add("/tags/<name>", endpoint="tag")
    return router


def test_url_for_fills_variables():
    assert make_router().url_for("user", id=7) == "/users/7"


def test_url_for_extra_values_become_query():
    url = make_router().url_for("user", id=7, tab="posts", page=2)
    assert url == "/users/7?tab=posts&page=2"


def test_url_for_escapes_segment_and_query():
    router = make_router()
    assert router.url_for("tag", name="a/b c") == "/tags/a%2Fb%20c"
    assert router.url_for("search", q="fish & chips") == "/search?q=fish+%26+chips"


def test_url_for_path_keeps_slashes():
    assert make_router().url_for("files", rest="docs/my file.txt") == "/files/docs/my%20file.txt"


def test_url_for_errors():
    router = make_router()
    with pytest.raises(BuildError):
        router.url_for("missing")
    with pytest.raises(BuildError):
        router.url_for("user")
    with pytest.raises(BuildError):
        router.url_for("user", id=-1)
    with pytest.raises(LookupError):
        router.url_for("user", id="seven")


def test_encode_query_drops_none_and_formats_bools():
    assert encode_query({"a": None, "b": True, "c": 0}) == "b=true&c=0"


def test_add_query_appends_to_existing_query():
    assert add_query("/x?a=1", {"b": 2}) == "/x?a=1&b=2"
    assert add_query("/x", {}) == "/x"


def test_join_paths():
    assert join_paths("/api/", "/users") == "/api/users"
    assert join_paths("", "users") == "/users"
