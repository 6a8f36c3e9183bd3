"""Process exit codes of the CLI: read from the error taxonomy in :mod:`sync_platform.errors`."""

from sync_platform.errors import ExitCode, classify

__all__ = ["ExitCode", "exit_code_for"]


def exit_code_for(error: BaseException) -> ExitCode:
    """The exit code for an error raised by a command (the error's own ``exit_code``)."""
    return classify(error).exit_code
