"""What every layer raises, and what the command line makes of it (docs/algorithm.md §11.3).

BadInput (exit status 2) covers everything a user can fix before anything runs: a config
value, a dataset, a flag, a file that is not what it should be. The command line prints any
of these as one `error:` line; nothing here imports more than the standard library.
"""

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DIVERGED = 0, 1, 2, 3


class BadInput(Exception):
    """Bad input or a refused request: one line, exit status 2."""


class UsageError(BadInput):
    """A wrong flag, a refused combination of flags, a run folder that is in use."""


class ResultsError(BadInput):
    """A run file (history, dump, status, checkpoint) that cannot be read as what it should be."""


class Diverged(Exception):
    """A non-finite loss or weight: one line, exit status 3."""


class Stopped(Exception):
    """Stopped by a signal after the last round's checkpoint; args: (signal number, message)."""


class RunFault(Exception):
    """The operating system refused a run file (no space, no permission): one line, exit 1."""


def one_line(error):
    """An exception (or text) as one line: its whitespace, newlines included, collapsed."""
    return " ".join(str(error).split())
