"""(being written)"""


class MailEndpoints:
    """Mixed into the letters service."""
