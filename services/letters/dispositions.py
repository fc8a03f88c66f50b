"""(being written)"""


class DispositionEndpoints:
    """Mixed into the letters service."""
