"""GSM8K and MATH: rows loaded through `datasets` (a hub name, or a local JSONL / JSON / parquet /
CSV file with the same fields), answers checked with math-verify.

Fields. GSM8K rows have `question` and `answer` (worked solution ending in `#### <number>`).
MATH rows have `problem` and `solution`, and an `answer` field if the source has one (MATH-500
does); otherwise the answer is the last `\\boxed{...}` of the solution.

Splits. `test` is `sources.test`; `train` and `val` come from `sources.train`, divided by a
stable hash of the problem id (`val_fraction`), unless `sources.val` is given. The paper's MATH
setup (train on MATH train + the 4,500 test problems outside MATH500, test on MATH500) is
available by pointing `sources.train` at such a file; the default trains on MATH train only.

Prompts. The MATH first-turn instruction and revise instruction are the paper's, verbatim; the
paper has no GSM8K setup, so GSM8K uses the same two texts. How the instruction and the problem
are joined ("Problem:\\n...") is ours: the paper gives only the instruction.
"""

from __future__ import annotations

import json
from pathlib import Path

from selfcorrect.tasks.base import Problem, Task, Verdict, check_split
from selfcorrect.tasks.splits import check_fractions, draw, hash_split

PAPER_MATH_INSTRUCTION = (
    "You are a math expert. When you respond, respond only with the Solution of the final Problem, thinking "
    "step by step. At the end of the Solution, when you give your final answer, write it in the form "
    '"Final Answer: The final answer is $answer$. I hope it is correct."'
)
PAPER_MATH_REVISE_INSTRUCTION = (
    "There might be an error in the solution above because of lack of understanding of the question. Please "
    "correct the error, if any, and rewrite the solution. Only output the final solution! At the end of the "
    'Solution, when you give your final answer, write it in the form "Final Answer: The final answer is '
    '$answer$. I hope it is correct."'
)
PROMPT_TEMPLATE = "{instruction}\n\nProblem:\n{problem}"
LOCAL_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class MalformedRow(ValueError):
    """A dataset row without the fields the task needs; the message names the row."""


def load_rows(source: dict) -> list[dict]:
    """All rows of one source: a local file (by suffix), or a hub dataset `path` with optional
    config `name` (a list of configs is concatenated, e.g. MATH's seven subjects) and `split`."""
    from datasets import load_dataset  # optional dependency: imported on use

    path = str(source["path"])
    local = Path(path).expanduser()
    if local.suffix.lower() in LOCAL_BUILDERS or local.exists():
        if not local.is_file():
            raise FileNotFoundError(f"dataset file not found: {local}")
        builder = LOCAL_BUILDERS.get(local.suffix.lower())
        if builder is None:
            raise ValueError(f"unsupported dataset file {local}: expected one of {sorted(LOCAL_BUILDERS)}")
        if builder == "json":
            _check_json_lines(local)
        return list(load_dataset(builder, data_files=str(local), split="train"))
    names = source.get("name")
    names = names if isinstance(names, (list, tuple)) else [names]
    rows: list[dict] = []
    for name in names:
        try:
            rows.extend(load_dataset(path, name, split=source.get("split", "train")))
        except Exception as e:  # no internet, unknown name, ...: say what to do offline
            raise RuntimeError(
                f"could not load dataset {path!r} (config {name!r}, split {source.get('split')!r}): {e}. "
                "Offline, point the task's sources.<split>.path at a local JSONL/parquet file with the same fields."
            ) from e
    return rows


def _check_json_lines(path: Path) -> None:
    """Name the first line that is not a JSON object (datasets' own error does not)."""
    if path.suffix.lower() != ".jsonl":
        return
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise MalformedRow(f"{path}: line {lineno} is not valid JSON ({e.msg}): {line.strip()[:80]!r}") from None
            if not isinstance(obj, dict):
                raise MalformedRow(f"{path}: line {lineno} is not a JSON object: {line.strip()[:80]!r}")


def last_boxed(text: str) -> str | None:
    """The contents of the last \\boxed{...} (or \\fbox{...}) in `text`, braces matched."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


class MathWordTask(Task):
    """Shared by GSM8K and MATH: subclasses say how a row becomes a problem."""

    name = "math_word"

    def __init__(
        self,
        sources: dict,
        val_fraction: float = 0.05,
        instruction: str = PAPER_MATH_INSTRUCTION,
        revise_instruction: str = PAPER_MATH_REVISE_INSTRUCTION,
        prompt_template: str = PROMPT_TEMPLATE,
        parse_timeout_s: int = 5,
    ):
        sources = dict(sources)
        for split in sources:
            check_split(split)
            if not sources[split] or not sources[split].get("path"):
                raise ValueError(f"{self.name}: sources.{split} needs a 'path' (hub name or local file), got {sources[split]!r}")
        for split in ("train", "test"):
            if split not in sources:
                raise ValueError(f"{self.name}: sources.{split} is required (got splits {sorted(sources)})")
        if "{problem}" not in prompt_template:
            raise ValueError(f"{self.name}: prompt_template must contain '{{problem}}', got {prompt_template!r}")
        self.sources = sources
        self.fractions = check_fractions({"train": 1 - float(val_fraction), "val": float(val_fraction)}, f"{self.name} val_fraction")
        self.instruction, self.revise_instruction, self.prompt_template = instruction, revise_instruction, prompt_template
        self.parse_timeout_s = int(parse_timeout_s)
        self._pools: dict[str, list[Problem]] = {}
        self._loaded: dict[str, list[Problem]] = {}
        self._gold: dict[str, list] = {}

    # --- problems ------------------------------------------------------------------------------
    def problem_from_row(self, row: dict, label: str) -> Problem:
        raise NotImplementedError

    def load_source(self, split: str) -> list[Problem]:
        if split not in self._loaded:
            self._loaded[split] = self._load_source(split)
        return self._loaded[split]

    def _load_source(self, split: str) -> list[Problem]:
        source = self.sources[split]
        label = f"{self.name}/{source.get('split', split)}"
        problems = [self.problem_from_row(row, f"{label}/{i}") for i, row in enumerate(load_rows(source))]
        seen = set()
        for p in problems:
            if p.id in seen:
                raise MalformedRow(f"{self.name} {source['path']}: duplicate problem id {p.id!r}")
            seen.add(p.id)
        return problems

    def pool(self, split: str) -> list[Problem]:
        check_split(split)
        if split not in self._pools:
            if split == "test" or "val" in self.sources:  # each split is its own source
                self._pools[split] = self.load_source(split)
            else:  # train and val divided from the train source
                rows = self.load_source("train")
                self._pools[split] = [p for p in rows if hash_split(p.id, self.fractions, salt=self.name) == split]
        return self._pools[split]

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        return draw(self.pool(split), n, seed, label=f"{self.name}/{split}")

    def user_prompt(self, problem: Problem) -> str:
        return self.prompt_template.format(instruction=self.instruction, problem=problem.prompt)

    # --- verifier ------------------------------------------------------------------------------
    def gold(self, problem: Problem) -> list:
        from math_verify import parse

        if problem.id not in self._gold:
            gold = parse(f"\\boxed{{{problem.answer}}}", parsing_timeout=self.parse_timeout_s)
            if not gold:
                gold = parse(f"${problem.answer}$", parsing_timeout=self.parse_timeout_s)
            if not gold:
                raise MalformedRow(f"{self.name} problem {problem.id!r}: math-verify cannot parse its answer {problem.answer!r}")
            self._gold[problem.id] = gold
        return self._gold[problem.id]

    def verify(self, problem: Problem, completion: str) -> Verdict:
        from math_verify import parse, verify

        pred = parse(completion, parsing_timeout=self.parse_timeout_s)
        if not pred:
            return Verdict(False, False, None, "no_answer")
        answer = str(pred[-1])
        correct = bool(verify(self.gold(problem), pred, timeout_seconds=self.parse_timeout_s))
        return Verdict(correct, True, answer, None if correct else "wrong_answer")


def _field(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedRow(f"{where}: field {key!r} is missing or empty (got {value!r}); row keys: {sorted(row)}")
    return value


class GSM8KTask(MathWordTask):
    name = "gsm8k"

    def problem_from_row(self, row: dict, label: str) -> Problem:
        question, solution = _field(row, "question", label), _field(row, "answer", label)
        if "####" not in solution:
            raise MalformedRow(f"{label}: GSM8K 'answer' has no '#### <number>' final line: {solution[-80:]!r}")
        final = solution.rsplit("####", 1)[1].strip().replace(",", "")
        try:
            float(final)
        except ValueError:
            raise MalformedRow(f"{label}: GSM8K final answer {final!r} is not a number") from None
        return Problem(id=str(row.get("id") or label), prompt=question.strip(), answer=final, meta={"solution": solution})


class MATHTask(MathWordTask):
    name = "math"

    def problem_from_row(self, row: dict, label: str) -> Problem:
        problem, solution = _field(row, "problem", label), _field(row, "solution", label)
        answer = row.get("answer")
        if not (isinstance(answer, str) and answer.strip()):
            answer = last_boxed(solution)
        if not answer or not answer.strip():
            raise MalformedRow(f"{label}: MATH row has no 'answer' field and no \\boxed{{...}} in its solution")
        meta = {"solution": solution, "level": row.get("level"), "subject": row.get("subject") or row.get("type")}
        return Problem(id=str(row.get("unique_id") or label), prompt=problem.strip(), answer=answer.strip(), meta=meta)
