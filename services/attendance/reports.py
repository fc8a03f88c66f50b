"""PLACEHOLDER: being written."""


class ReportEndpoints:
    pass
