"""PLACEHOLDER: being written."""


class Closing:
    def revise_closed_day(self, employee, day, reason):
        return None
