"""The package's layers: no module imports one from a higher layer, and no modules import each other in a circle.

Every import of srl_agent counts, at module level or inside a function: a lazy import defers the cost of a
dependency, not the dependency. Circles are looked for twice: among modules, and among the top-level units
(a subpackage such as train/ counts as one), so that train/ importing rlvr/ while rlvr/ imports train/ is a
circle even when no two files close it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import srl_agent

PACKAGE_DIR = Path(srl_agent.__file__).parent
ROOT = "srl_agent"

# Lowest first. A module sits on the layer of its top-level unit (srl_agent.X, a module or a subpackage);
# it may import its own layer and the ones below. New units go on the lowest layer that can hold them.
LAYERS: dict[str, list[str]] = {
    "types": ["srl_agent", "errors", "paths", "types", "jsonio", "pretrained", "tools", "actions", "chat",
              "metrics"],
    "formats": ["formats", "tokenizer", "steps", "reward", "data"],
    "sandbox": ["sandbox", "run_call", "executor", "images", "replay", "testbed"],
    "policy": ["policy", "turns"],
    "agent": ["agent", "train", "rlvr", "probe"],
    "bench": ["bench", "tasks", "plot"],
    "cli": ["cli"],
}

# Imports made inside a function that would close a circle, each with why it stays. Only a package's factory
# may do this: it picks an implementation when called, and the implementations import the package's protocol.
LAZY_FACTORY_IMPORTS = {
    ("srl_agent.sandbox", "srl_agent.sandbox.docker"): "open_sandbox picks the sandbox implementation by kind",
    ("srl_agent.sandbox", "srl_agent.sandbox.podman"): "open_sandbox picks the sandbox implementation by kind",
    ("srl_agent.sandbox", "srl_agent.sandbox.bwrap"): "open_sandbox picks the sandbox implementation by kind",
    ("srl_agent.policy", "srl_agent.policy.hf"): "load_policy picks the backend by its spec",
    ("srl_agent.policy", "srl_agent.policy.openai"): "load_policy picks the backend by its spec",
    ("srl_agent.policy", "srl_agent.policy.vllm"): "load_policy picks the backend by its spec",
    ("srl_agent.policy", "srl_agent.policy.replay"): "load_policy picks the backend by its spec",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imports_of(module: str) -> dict[str, bool]:
    """{imported srl_agent module: whether every import of it is inside a function}."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, bool] = {}

    def visit(node: ast.AST, in_function: bool) -> None:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import name` imports the submodule pkg.name when there is one
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        for target in targets:
            if (target == ROOT or target.startswith(ROOT + ".")) and target != module:
                found[target] = found.get(target, True) and in_function
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(path.read_text(), str(path)), False)
    return found


IMPORTS = {module: imports_of(module) for module in MODULES}


def unit(module: str) -> str:
    parts = module.split(".")
    return ROOT if len(parts) == 1 else parts[1]


LAYER_OF = {name: i for i, units in enumerate(LAYERS.values()) for name in units}
LAYER_NAMES = list(LAYERS)


def module_graph() -> dict[str, set[str]]:
    return {module: {t for t, lazy in targets.items() if not (lazy and (module, t) in LAZY_FACTORY_IMPORTS)}
            for module, targets in IMPORTS.items()}


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        graph.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward_imports() -> list[str]:
    return [f"{module} ({LAYER_NAMES[LAYER_OF[unit(module)]]}) imports {target} "
            f"({LAYER_NAMES[LAYER_OF[unit(target)]]})"
            for module, targets in IMPORTS.items() for target in targets
            if LAYER_OF[unit(target)] > LAYER_OF[unit(module)]]


def test_every_unit_has_a_layer():
    unplaced = sorted({unit(m) for m in MODULES} - set(LAYER_OF))
    assert not unplaced, f"place these in LAYERS: {unplaced}"
    assert len(LAYER_OF) == sum(len(units) for units in LAYERS.values()), "a unit is on two layers"


def test_no_module_imports_a_higher_layer():
    assert upward_imports() == []


def test_no_import_circles_among_modules():
    assert circles(module_graph()) == []


def test_no_import_circles_among_packages():
    assert circles(unit_graph()) == []


def test_factory_imports_are_lazy_and_still_exist():
    for (module, target), reason in LAZY_FACTORY_IMPORTS.items():
        assert IMPORTS[module].get(target) is True, f"{module} -> {target} ({reason}) must stay inside a function"


def test_the_checks_see_a_circle_and_an_upward_import():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    assert IMPORTS["srl_agent.cli"]  # the parser found the CLI's imports
