"""(being written)"""


class ArchiveEndpoints:
    """Mixed into the letters service."""
