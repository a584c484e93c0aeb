"""User-facing errors.

A user error is one line that names the input and the fix, never a traceback; a bug is a traceback.
`JobError` fails one job (the other jobs go on); `ManifestError` stops before anything starts.
"""


class VloggerError(Exception):
    """Base of every error that is the user's to fix. `str(err)` is one line."""

    def __init__(self, message: str):
        # Keep the promise of "one line" even when a library hands us a multi-line message.
        super().__init__(" ".join(str(message).split()))


class ManifestError(VloggerError):
    """The manifest or the command line is invalid: exit code 2, nothing is started."""


class JobError(VloggerError):
    """One job cannot be done (bad portrait, silent audio, ...): it is marked failed, the others run."""


class InputError(JobError):
    """An input file of a job is unreadable, corrupt or out of the accepted range."""
