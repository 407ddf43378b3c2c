"""The one exception type users see: a message that names the problem and what to do."""


class VoicefakeError(Exception):
    """Bad input or an impossible request. The CLI prints it as one line and exits 2."""
