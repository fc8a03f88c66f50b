"""(being written)"""


class DocumentEndpoints:
    """Mixed into the letters service."""
