class CliError(Exception):
    """A failure the user can act on; printed as `error: ...` with exit code 1."""

    code = 1


class UsageError(CliError):
    """The command was asked for something it cannot take (bad value, wrong place): exit code 2."""

    code = 2
