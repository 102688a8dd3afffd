from routekit import MethodNotAllowed, Router

router = Router()
router.add("/items/<int:id>", endpoint="item")
router.add("/items/<int:id>", methods=["PUT", "PATCH"], endpoint="item_update")
router.add("/items/<int:id>", methods=["DELETE"], endpoint="item_delete")
try:
    router.match("/items/1", "POST")
except MethodNotAllowed as exc:
    print("status:", exc.status)
    print("allowed:", exc.allowed)
