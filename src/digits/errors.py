"""The one exception type a user sees as a message rather than a traceback."""


class DigitsError(Exception):
    """A problem with inputs, data or params; the message names it and says how to fix it."""
