from routekit import Router
from routekit.urls import encode_query

router = Router()
router.add("/search", endpoint="search")
print(router.url_for("search", q="x", tag=["red", "big blue"]))
print(encode_query({"id": (1, 2)}))
