"""The one exception type that user-facing code turns into a one-line message."""


class ColaError(Exception):
    """A problem with the user's input or environment, explained in one actionable sentence.

    The CLI prints it as ``error: <message>`` and exits 2; the dashboard shows it as a friendly
    message. Internal bugs are not ColaErrors and keep their tracebacks.
    """
