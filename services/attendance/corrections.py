"""PLACEHOLDER: being written."""


class CorrectionEndpoints:
    pass
