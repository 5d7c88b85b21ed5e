"""User-facing errors: one line, naming the field and the fix; the CLI prints them and exits with code 2."""

from __future__ import annotations


class JaqError(Exception):
    """An error caused by the user's input (config, flags, files, data).

    The CLI catches it, prints ``jaq: error: <message>`` on one line and exits with :data:`EXIT_USAGE`.
    ``field`` names the offending field (``"accelerator.pe_x"``, ``"layers[3].kernel"``...) when there is one.
    """

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


EXIT_USAGE = 2
