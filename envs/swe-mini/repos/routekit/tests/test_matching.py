import pytest

from routekit import MethodNotAllowed, NotFound, RedirectRequired, RoutePattern, Router


def make_router():
    router = Router()
    router.add("/", endpoint="index")
    router.add("/users/<int:id>", endpoint="user")
    router.add("/users/<name>", endpoint="user_by_name")
    router.add("/files/<path:rest>", endpoint="files")
    router.add("/posts/<slug:slug>", endpoint="post")
    router.add("/prices/<float:amount>", endpoint="price")
    router.add("/about/", endpoint="about")
    router.add("/login", methods=["GET", "POST"], endpoint="login")
    return router


def test_match_int_converter():
    match = make_router().match("/users/42")
    assert match.endpoint == "user"
    assert match.params == {"id": 42}


def test_first_matching_route_wins_and_fallback_to_string():
    match = make_router().match("/users/alice")
    assert match.endpoint == "user_by_name"
    assert match.params == {"name": "alice"}


def test_string_converter_unquotes_and_stays_in_one_segment():
    router = make_router()
    assert router.match("/users/J%C3%B6rg").params == {"name": "J\u00f6rg"}
    with pytest.raises(NotFound):
        router.match("/users/a/b")


def test_path_converter_spans_slashes():
    assert make_router().match("/files/docs/2024/report.pdf").params == {
        "rest": "docs/2024/report.pdf"
    }


def test_slug_and_float_converters():
    router = make_router()
    assert router.match("/posts/hello-world").params == {"slug": "hello-world"}
    with pytest.raises(NotFound):
        router.match("/posts/Hello_World")
    assert router.match("/prices/9.99").params == {"amount": 9.99}


def test_unknown_path_raises_not_found():
    with pytest.raises(NotFound) as info:
        make_router().match("/nope")
    assert info.value.status == 404


def test_wrong_method_raises_method_not_allowed():
    with pytest.raises(MethodNotAllowed) as info:
        make_router().match("/login", "DELETE")
    assert info.value.status == 405
    assert info.value.allowed == ["GET", "HEAD", "POST"]


def test_head_is_allowed_for_get_routes():
    assert make_router().match("/users/1", "head").endpoint == "user"


def test_trailing_slash_redirects():
    router = make_router()
    with pytest.raises(RedirectRequired) as info:
        router.match("/about")
    assert info.value.location == "/about/"
    with pytest.raises(RedirectRequired) as info:
        router.match("/login/")
    assert info.value.location == "/login"


def test_redirects_can_be_disabled():
    router = Router(redirect_slashes=False)
    router.add("/about/", endpoint="about")
    with pytest.raises(NotFound):
        router.match("/about")


def test_pattern_errors():
    with pytest.raises(ValueError):
        RoutePattern("users/<id>")
    with pytest.raises(ValueError):
        RoutePattern("/a/<id>/<int:id>")
    with pytest.raises(ValueError):
        RoutePattern("/a/<uuid:id>")
    with pytest.raises(ValueError):
        RoutePattern("/a/<bad name>")


def test_duplicate_endpoint_rejected():
    router = Router()
    router.add("/a", endpoint="a")
    with pytest.raises(ValueError):
        router.add("/b", endpoint="a")
