"""The one exception type for user mistakes (bad flags, missing input, unwritable output).

The CLI prints it as a single line and exits 2; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; its message is shown as-is, without a traceback."""
