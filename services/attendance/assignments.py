"""PLACEHOLDER: being written."""


class AssignmentEndpoints:
    pass
