import pytest

from routekit import Router


def test_group_prefixes_pattern_and_endpoint():
    router = Router()
    api = router.group("/api/v1", endpoint_prefix="api")

    @api.route("/posts/<slug:slug>")
    def post(slug):
        return slug

    match = router.match("/api/v1/posts/hello")
    assert match.endpoint == "api.post"
    assert match.handler is post
    assert router.url_for("api.post", slug="hello") == "/api/v1/posts/hello"


def test_group_root_route_and_trailing_slash_prefix():
    router = Router()
    api = router.group("/api/", endpoint_prefix="api")
    api.add("/", endpoint="root")
    assert router.match("/api/").endpoint == "api.root"


def test_nested_groups_join_prefixes():
    router = Router()
    admin = router.group("/admin", endpoint_prefix="admin").group("/users", "users")
    admin.add("/<int:id>", methods=["GET", "DELETE"], endpoint="detail")
    match = router.match("/admin/users/3", "DELETE")
    assert match.endpoint == "admin.users.detail"
    assert router.url_for("admin.users.detail", id=3) == "/admin/users/3"


def test_group_without_endpoint_prefix():
    router = Router()
    group = router.group("/v2")
    group.add("/ping", endpoint="ping")
    assert router.url_for("ping") == "/v2/ping"


def test_group_prefix_must_be_absolute():
    with pytest.raises(ValueError):
        Router().group("api")
