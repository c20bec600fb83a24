"""selfcorrect: a controlled harness comparing offline SFT and multi-turn RL (SCoRe) for
training language models to correct their own mistakes."""

__version__ = "0.1.0"

from selfcorrect import resolvers as _resolvers  # noqa: E402,F401  (the config's ${sc.*} resolvers, registered on import)
