"""pamong.launcher.settle_collector: once a service has started, what start-up built is
frozen out of the cyclic collector's scans and the collector runs after GC_THRESHOLD
allocations (a request allocates about a thousand objects; Python's 700 collected several
times per request)."""

import gc

from pamong.config import load_config
from pamong.launcher import settle_collector


def test_start_up_objects_are_frozen_and_the_threshold_is_the_setting():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        kept = {"built": ["at", "start-up"]}  # a container the collector tracks
        settle_collector({**load_config(), "GC_THRESHOLD": 12345})
        assert gc.get_threshold()[0] == 12345
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # frozen: no longer scanned
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

