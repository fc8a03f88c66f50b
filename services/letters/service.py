"""The letters service: entrypoints only. Each concern is a mixin in its own module (rules in
``domain``, storage in ``store``); this class puts them together."""

import logging

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider

from pamong.cache import TimedCache
from pamong.events.outbox import Outbox
from pamong.health import HealthEndpoints
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo
from pamong.timers import setting_timer
from pamong.web.openapi import openapi_endpoint
from pamong.web.pages import PageEndpoints
from services.letters import numbering
from services.letters.archive import ArchiveEndpoints
from services.letters.dispositions import DispositionEndpoints
from services.letters.flow import FlowEndpoints
from services.letters.lists import ListEndpoints
from services.letters.mail import MailEndpoints
from services.letters.pages import LetterPages
from services.letters.reference import ReferenceEndpoints, ReferenceSeed
from services.letters.reserved import ReservationEndpoints
from services.letters.signed import DocumentEndpoints
from services.letters.store import INDEXES

log = logging.getLogger(__name__)


class CacheProvider(DependencyProvider):
    """One cache of reference data per process, shared by its workers."""

    def setup(self):
        self.cache = TimedCache(float(self.container.config.get(
            "LETTERS_REFERENCE_CACHE_SECONDS", 5)))

    def get_dependency(self, worker_ctx):
        return self.cache


class LettersService(FlowEndpoints, ReservationEndpoints, DocumentEndpoints, MailEndpoints,
                     DispositionEndpoints, ListEndpoints, ArchiveEndpoints, ReferenceEndpoints,
                     LetterPages, PageEndpoints, DirectoryReplica,
                     HealthEndpoints, openapi_endpoint("letters")):
    name = "letters"
    db = Mongo(indexes=REPLICA_INDEXES + INDEXES)
    outbox = Outbox()
    config = Config()
    cache = CacheProvider()
    seed = ReferenceSeed()

    @setting_timer("LETTERS_SETTLE_INTERVAL_SECONDS", 30)
    def settle_numbers(self):
        """Account for numbers a stopped process or a lost race left (numbering.settle)."""
        grace = float(self.config.get("LETTERS_NUMBER_GRACE_SECONDS", 60))
        if cancelled := numbering.settle(self.db, grace):
            log.warning("cancelled %d number(s) left unused, on record with the reason",
                        cancelled)


SERVICE = LettersService
