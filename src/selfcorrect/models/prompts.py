"""The one function that turns a problem and earlier attempts into chat messages."""

from __future__ import annotations

from collections.abc import Sequence

from selfcorrect.tasks.base import Problem, Task


def conversation(task: Task, problem: Problem, attempts: Sequence[str] = ()) -> list[dict[str, str]]:
    """x, then each earlier attempt followed by the fixed revise instruction; a task with the
    `prefix_messages` capability (a system message, a worked example) has its messages first.

    The instruction is the same whatever the attempt was: it never reveals correctness.
    With no attempts this is the first-turn prompt; with one, the second-turn prompt.
    """
    prefix = getattr(task, "prefix_messages", None)
    messages = [*(prefix(problem) if prefix is not None else []), {"role": "user", "content": task.user_prompt(problem)}]
    for attempt in attempts:
        messages.append({"role": "assistant", "content": attempt})
        messages.append({"role": "user", "content": task.revise_instruction})
    return messages
