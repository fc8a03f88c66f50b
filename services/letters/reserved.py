"""(being written)"""


class ReservationEndpoints:
    """Mixed into the letters service."""
