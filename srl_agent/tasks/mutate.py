"""Bug injection: small, plausible AST-level mutations of a repository's functions and methods.

Each mutation is found on the standard library's `ast` and applied as text edits at the nodes' exact
source positions, so everything else in the file (formatting, comments) stays as it was and the
mutation is a small reversible patch. The kinds (SWE-smith's procedural bugs, roughly):

    comparison    a flipped (`<` -> `>=`, `==` -> `!=`, `in` -> `not in`) or loosened (`<` -> `<=`) comparison
    off_by_one    a range bound or slice bound moved by one
    drop_branch   an `if` block (a guard, an early return) or an `else` branch removed
    swap          the operands of a non-commutative operator, or a call's first two arguments, swapped
    constant      a default argument or a number/boolean in the body changed
    remove_call   a call statement removed, or a wrapping call (`int(x)`, `s.strip()`) dropped
    combined      two of the above in one file

    candidates(text, path) -> [Mutation]        every single mutation a file offers
    select(files, seed, limit) -> [Mutation]    a seeded, kind-balanced choice, with some combinations
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import random
import re
from dataclasses import dataclass

# Bigger files are generated tables (Unicode data, ...), not code a bug report would be about.
MAX_FILE_CHARS = 100_000
KINDS = ("comparison", "off_by_one", "drop_branch", "swap", "constant", "remove_call", "combined")

# Flips negate the comparison; loosenings move its boundary.
_FLIP = {ast.Eq: "!=", ast.NotEq: "==", ast.Lt: ">=", ast.GtE: "<", ast.Gt: "<=", ast.LtE: ">",
         ast.In: "not in", ast.NotIn: "in", ast.Is: "is not", ast.IsNot: "is"}
_LOOSEN = {ast.Lt: "<=", ast.LtE: "<", ast.Gt: ">=", ast.GtE: ">"}
_OP_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
            ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_NON_COMMUTATIVE = {ast.Sub: "-", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
                    ast.LShift: "<<", ast.RShift: ">>"}
# Operands that can trade places without parentheses changing the meaning.
_ATOMS = (ast.Name, ast.Attribute, ast.Constant, ast.Call, ast.Subscript)
_KEEP = {"super", "range", "len", "print", "iter", "next"}  # unwrapping these breaks more than a bug would
# Zero-argument methods whose result is usually a cleaned-up copy: dropping one leaves plausible code.
_IDEMPOTENT_METHODS = {"strip", "lstrip", "rstrip", "lower", "upper", "casefold", "copy", "items", "keys",
                       "values", "title"}


@dataclass(frozen=True)
class Edit:
    """Replace text[start:end] (character offsets) by `new`."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class Mutation:
    """One bug: text edits in one file, with where and what for people and for the held-out split."""

    path: str
    kind: str
    line: int
    symbol: str
    """The function or method it is in (`Class.method`)."""
    description: str
    edits: tuple[Edit, ...]

    @property
    def id(self) -> str:
        """A stable short name: the same mutation of the same file always gets the same id."""
        key = repr((self.path, self.kind, [(e.start, e.end, e.new) for e in self.edits]))
        return f"{self.kind}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"

    def apply(self, text: str) -> str:
        for edit in sorted(self.edits, key=lambda e: e.start, reverse=True):
            text = text[:edit.start] + edit.new + text[edit.end:]
        return text

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "file": self.path, "line": self.line, "symbol": self.symbol,
                "description": self.description}


class _Positions:
    """ast positions (1-based lines, UTF-8 byte columns) -> character offsets into the text."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def line_start(self, lineno: int) -> int:
        return self.starts[lineno - 1]


def _bump(pos: _Positions, node: ast.expr, delta: int) -> str | None:
    """`node`'s text moved by `delta` (an int constant changes its value; a simple expression gets `+ 1`)."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return str(node.value + delta)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) \
            and isinstance(node.right, ast.Constant) and type(node.right.value) is int:
        value = (node.right.value if isinstance(node.op, ast.Add) else -node.right.value) + delta  # n - 1 -> n - 2
        left = pos.segment(node.left)
        return left if value == 0 else f"{left} {'+' if value > 0 else '-'} {abs(value)}"
    if isinstance(node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.UnaryOp)) or (
            isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult))):
        return f"{pos.segment(node)} {'+' if delta > 0 else '-'} {abs(delta)}"
    return None


def _statement_removal(pos: _Positions, node: ast.stmt, block: list[ast.stmt]) -> Edit | None:
    """Remove a statement's whole lines, or put `pass` in its place when it is alone in its block."""
    start, end = pos.span(node)
    before = pos.text[pos.line_start(node.lineno):start]
    rest = pos.text[end:pos.line_start(node.end_lineno + 1) if node.end_lineno < len(pos.lines) else len(pos.text)]
    if before.strip() or (rest.strip() and not rest.strip().startswith("#")):
        return None  # shares a line with other code (`a; b`)
    if len(block) == 1:
        return Edit(start, end, "pass")
    last = node.end_lineno + 1
    return Edit(pos.line_start(node.lineno), pos.line_start(last) if last <= len(pos.lines) else len(pos.text), "")


def _else_removal(pos: _Positions, node: ast.If) -> Edit | None:
    """Drop an `if`'s plain `else:` branch (the `else:` line through the branch's last line)."""
    first = node.orelse[0].lineno
    for lineno in range(first - 1, node.body[-1].end_lineno, -1):
        if pos.lines[lineno - 1].strip() == "else:":
            last = node.orelse[-1].end_lineno + 1
            return Edit(pos.line_start(lineno), pos.line_start(last) if last <= len(pos.lines) else len(pos.text), "")
    return None


class _Finder(ast.NodeVisitor):
    """Collects every candidate mutation inside functions and methods."""

    def __init__(self, text: str, path: str):
        self.pos, self.path = _Positions(text), path
        self.scope: list[str] = []
        self.functions = 0  # > 0 inside a function body
        self.found: list[Mutation] = []
        self.statement_calls: set[int] = set()  # calls whose value is thrown away: unwrapping them is no bug

    def add(self, kind: str, node: ast.AST, description: str, *edits: Edit) -> None:
        if self.functions and all(edits):
            self.found.append(Mutation(self.path, kind, node.lineno, ".".join(self.scope), description, edits))

    # --- scopes ---------------------------------------------------------------------------------

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.functions += 1
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = list(zip(positional[len(positional) - len(args.defaults):], args.defaults, strict=True))
        defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
        for arg, default in defaults:
            self._constant(default, f"default of `{arg.arg}`")
        for statement in node.body:
            self.visit(statement)
        self._blocks(node)
        self.functions -= 1
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        pass  # positions inside f-strings are not reliable across Python versions

    # --- statements -----------------------------------------------------------------------------

    def _blocks(self, function: ast.AST) -> None:
        """Statement-level mutations, block by block, in this function (not in nested ones)."""
        pending = [function]
        while pending:
            owner = pending.pop()
            for field in ("body", "orelse", "finalbody"):
                block = getattr(owner, field, None)
                if not isinstance(block, list):
                    continue
                for statement in block:
                    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                        continue
                    self._statement(statement, block, owner, field)
                    pending.append(statement)
            for handler in getattr(owner, "handlers", []):
                pending.append(handler)

    def _statement(self, node: ast.stmt, block: list[ast.stmt], owner: ast.AST, field: str) -> None:
        pos = self.pos
        is_elif = isinstance(owner, ast.If) and field == "orelse" and len(block) == 1 and \
            pos.lines[node.lineno - 1].lstrip().startswith("elif")
        if isinstance(node, ast.If) and not is_elif:
            if not node.orelse:
                self.add("drop_branch", node, f"removed `if {_one_line(pos.segment(node.test))}:` block",
                         _statement_removal(pos, node, block))
            elif not (len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)):
                self.add("drop_branch", node, f"removed the `else` branch of `if {_one_line(pos.segment(node.test))}:`",
                         _else_removal(pos, node))
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            self.add("remove_call", node, f"removed the call `{ast.unparse(node.value.func)}(...)`",
                     _statement_removal(pos, node, block))

    # --- expressions ----------------------------------------------------------------------------

    def visit_Expr(self, node: ast.Expr) -> None:
        self.statement_calls.add(id(node.value))
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        self.generic_visit(node)
        if len(node.ops) != 1:
            return
        op = type(node.ops[0])
        gap_start, gap_end = self.pos.span(node.left)[1], self.pos.span(node.comparators[0])[0]
        gap = self.pos.text[gap_start:gap_end]
        old = _OP_TEXT[op]
        if gap.replace("(", " ").replace(")", " ").split() != old.split():
            return  # comments or line breaks around the operator: leave it alone
        found = re.search(r"\s+".join(map(re.escape, old.split())), gap)
        at, end = gap_start + found.start(), gap_start + found.end()
        for new, how in ((_FLIP.get(op), "flipped"), (_LOOSEN.get(op), "loosened")):
            if new:
                self.add("comparison", node, f"{how} `{old}` to `{new}`", Edit(at, end, new))

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        pos = self.pos
        if isinstance(node.func, ast.Name) and node.func.id == "range" and 1 <= len(node.args) <= 3 \
                and not node.keywords:
            stop = node.args[0] if len(node.args) == 1 else node.args[1]
            for delta in (-1, 1):
                new = _bump(pos, stop, delta)
                if new is not None:
                    self.add("off_by_one", node, f"range stop `{pos.segment(stop)}` -> `{new}`",
                             Edit(*pos.span(stop), new))
        plain = [a for a in node.args if not isinstance(a, ast.Starred)]
        if len(plain) == len(node.args) >= 2 and pos.segment(node.args[0]) != pos.segment(node.args[1]) \
                and not (isinstance(node.func, ast.Name) and node.func.id in ("range", "isinstance", "getattr")):
            a, b = node.args[0], node.args[1]
            self.add("swap", node, f"swapped the first two arguments of `{ast.unparse(node.func)}`",
                     Edit(*pos.span(a), pos.segment(b)), Edit(*pos.span(b), pos.segment(a)))
        if isinstance(node.func, ast.Name) and len(node.args) == 1 and not node.keywords and id(node) not in \
                self.statement_calls and not isinstance(node.args[0], ast.Starred) and node.func.id not in _KEEP:
            self.add("remove_call", node, f"dropped the wrapping call `{node.func.id}(...)`",
                     Edit(*pos.span(node), pos.segment(node.args[0])))
        if isinstance(node.func, ast.Attribute) and not node.args and not node.keywords \
                and isinstance(node.func.value, (ast.Name, ast.Attribute)) and node.func.attr in _IDEMPOTENT_METHODS:
            self.add("remove_call", node, f"dropped the call `.{node.func.attr}()`",
                     Edit(*pos.span(node), pos.segment(node.func.value)))

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self.generic_visit(node)
        if isinstance(node.slice, ast.Slice) and node.slice.step is None:
            for bound in (node.slice.lower, node.slice.upper):
                if bound is None:
                    continue
                for delta in (-1, 1):
                    new = _bump(self.pos, bound, delta)
                    if new is not None:
                        self.add("off_by_one", node, f"slice bound `{self.pos.segment(bound)}` -> `{new}`",
                                 Edit(*self.pos.span(bound), new))

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self.generic_visit(node)
        symbol = _NON_COMMUTATIVE.get(type(node.op))
        if symbol and isinstance(node.left, _ATOMS) and isinstance(node.right, _ATOMS):
            left, right = self.pos.segment(node.left), self.pos.segment(node.right)
            if left != right:
                self.add("swap", node, f"swapped the operands of `{_one_line(self.pos.segment(node))}`",
                         Edit(*self.pos.span(node.left), right), Edit(*self.pos.span(node.right), left))

    def visit_Constant(self, node: ast.Constant) -> None:
        self._constant(node, "constant")

    def _constant(self, node: ast.expr, what: str) -> None:
        if not isinstance(node, ast.Constant) or node.lineno != node.end_lineno:
            return
        value = node.value
        if isinstance(value, bool):
            new = str(not value)
        elif type(value) is int:
            new = str(value + 1)
        elif type(value) is float:
            new = repr(value * 2 if value else 1.0)
        else:
            return
        old = self.pos.segment(node)
        if old.lstrip("-+").replace("_", "").isalnum() or type(value) is float:
            self.add("constant", node, f"{what} `{old}` -> `{new}`", Edit(*self.pos.span(node), new))


def _one_line(code: str) -> str:
    return " ".join(code.split())


def candidates(text: str, path: str) -> list[Mutation]:
    """Every single mutation `text` (the file at `path`) offers, in source order; [] if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    finder = _Finder(text, path)
    finder.visit(tree)
    seen, unique = set(), []
    for mutation in sorted(finder.found, key=lambda m: (m.edits[0].start, m.kind, m.description)):
        result = _local_result(text, mutation)
        if result not in seen:  # two ways to the same text (`n - 1` -> `n - 2`) count once
            seen.add(result)
            unique.append(mutation)
    return unique


def _local_result(text: str, mutation: Mutation) -> tuple[int, int, str]:
    """The mutated lines only (cheap to compare, unlike whole files): (start, end, their new text)."""
    low, high = min(e.start for e in mutation.edits), max(e.end for e in mutation.edits)
    start = text.rfind("\n", 0, low) + 1
    end = text.find("\n", high)
    end = len(text) if end < 0 else end
    window = Mutation(mutation.path, mutation.kind, mutation.line, mutation.symbol, mutation.description,
                      tuple(Edit(e.start - start, e.end - start, e.new) for e in mutation.edits))
    return start, end, window.apply(text[start:end])


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError):
        return False


def combine(first: Mutation, second: Mutation) -> Mutation | None:
    """Both mutations at once (same file, edits apart); None when they overlap."""
    if first.path != second.path:
        return None
    spans = sorted((e.start, e.end) for e in (*first.edits, *second.edits))
    if any(a_end > b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)):
        return None
    a, b = sorted((first, second), key=lambda m: m.edits[0].start)
    symbol = a.symbol if a.symbol == b.symbol else f"{a.symbol}, {b.symbol}"
    return Mutation(a.path, "combined", a.line, symbol, f"{a.description}; {b.description}", (*a.edits, *b.edits))


def select(files: dict[str, str], seed: int, limit: int, combined_share: float = 0.15,
           kinds: tuple[str, ...] = KINDS) -> list[Mutation]:
    """Up to `limit` mutations of `files` ({path: text}) of the given `kinds`, interleaved, deterministic by `seed`.

    The single kinds take turns (each kind's candidates shuffled by the seed) so a small budget still
    sees every kind; with "combined" among `kinds`, about `combined_share` of the list are pairs of two mutations
    in one file.
    """
    rng = random.Random(seed)
    by_kind: dict[str, list[Mutation]] = {}
    for path in sorted(files):
        if len(files[path]) > MAX_FILE_CHARS:
            continue
        for mutation in candidates(files[path], path):
            if mutation.kind in kinds:
                by_kind.setdefault(mutation.kind, []).append(mutation)
    for pool in by_kind.values():
        rng.shuffle(pool)
    singles: list[Mutation] = []
    queues = [list(by_kind[k]) for k in KINDS if k in by_kind]
    while queues and len(singles) < limit:
        for queue in queues:
            if queue and len(singles) < limit:
                mutation = queue.pop()
                if _parses(mutation.apply(files[mutation.path])):
                    singles.append(mutation)
        queues = [q for q in queues if q]
    pool = [m for k in KINDS if k in by_kind for m in by_kind[k]]
    n_combined = round(limit * combined_share) if "combined" in kinds else 0
    combos: list[Mutation] = []
    for _ in range(n_combined * 20):
        if len(combos) >= n_combined or len(pool) < 2:
            break
        pair = combine(*rng.sample(pool, 2))
        if pair is not None and _parses(pair.apply(files[pair.path])) and pair.id not in {c.id for c in combos}:
            combos.append(pair)
    chosen = singles[:limit - len(combos)]
    for i, combo in enumerate(combos):  # spread them through the list
        chosen.insert(min(len(chosen), (i + 1) * max(1, len(chosen) // (len(combos) + 1))), combo)
    return chosen[:limit]
