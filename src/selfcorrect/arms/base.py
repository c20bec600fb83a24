"""`arm=base`: no training; the base model is evaluated as it is."""

from selfcorrect.policy import Policy


def train(ctx) -> Policy:
    return ctx.base
