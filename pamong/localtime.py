"""The Pemda's own date. Servers run on UTC and Indonesia is 7 to 9 hours ahead, so from
17:00 UTC (00:00 WIB) the machine's ``date.today()`` is yesterday where the Pemda is."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Jakarta"


def local_today(zone=DEFAULT_ZONE):
    """Today in ``zone`` (an IANA name: Asia/Jakarta, Asia/Makassar, Asia/Jayapura)."""
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
