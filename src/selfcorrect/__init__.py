"""selfcorrect: a controlled harness comparing offline SFT and multi-turn RL (SCoRe) for
training language models to correct their own mistakes."""

__version__ = "0.1.0"
