"""Timers whose interval is a setting of the service."""

from nameko.timer import Timer


class SettingTimer(Timer):
    """nameko's timer with its interval read from the service's config (``setting``) when the
    container sets up, firing at start (``eager``: work missed while the service was down,
    a day close say, is caught up at once). An interval of 0 turns it off (tests of other
    parts)."""

    def __init__(self, setting, default, **kwargs):
        super().__init__(default, eager=True, **kwargs)
        self.setting = setting

    def setup(self):
        self.interval = float(self.container.config.get(self.setting, self.interval))

    def start(self):
        if self.interval > 0:
            super().start()

    def stop(self):
        if self.gt is not None:
            super().stop()

    def kill(self):
        if self.gt is not None:
            super().kill()


setting_timer = SettingTimer.decorator
