"""The one exception type the CLI turns into a clear one-line message and a non-zero exit."""


class PipelineError(Exception):
    """A problem with inputs or artifacts that the user can fix; never a bug in our code."""
