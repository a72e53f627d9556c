"""The one exception type that the CLI turns into a one-line message and exit status 2."""


class UserError(Exception):
    """A problem the user can fix (bad file, bad value, bad path): shown without traceback."""
