"""PLACEHOLDER: being written."""


class ConfigEndpoints:
    pass
