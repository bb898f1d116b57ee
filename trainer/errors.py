"""The trainer's one error type."""


class TrainerError(Exception):
    """A problem the user can act on: bad input data, bad arguments, a run that cannot be resumed."""
