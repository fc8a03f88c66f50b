"""(being written)"""


class ListEndpoints:
    """Mixed into the letters service."""
