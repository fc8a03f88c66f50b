"""PLACEHOLDER: being written."""


class LeaveEndpoints:
    pass
