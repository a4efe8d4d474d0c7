"""The one exception type gvmlit raises for user-facing problems (bad config, bad data, bad input).

The CLI prints it as a single line ``gvmlit: error: <message>`` and exits with status 2.
"""


class GvmlitError(Exception):
    """A problem the user can fix; the message names what is wrong and where."""
