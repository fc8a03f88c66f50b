"""Indonesia's national holidays (the ``holidays`` package, Indonesian names), shared by the
modules that count working days; each adds its own regional days and cuti bersama."""

import functools

import holidays


@functools.lru_cache(maxsize=16)
def _national(year):
    return dict(holidays.Indonesia(years=year, language="id"))


def national_holidays(year):
    """``{date: name}`` of the national holidays of ``year`` (a copy: callers may add)."""
    return dict(_national(year))
