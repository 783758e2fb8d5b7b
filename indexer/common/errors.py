"""Errors a user can fix: the CLI prints them on one line, the API turns them into 4xx."""


class UserError(ValueError):
    """Bad input (spec, data file, parameters); the message says what is wrong."""


class DataError(UserError):
    """A dataset that cannot be used as given (NaN, empty, dimension mismatch, unreadable)."""
