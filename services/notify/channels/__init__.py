"""The channels notify delivers on, one client per process (``Channels``, a dependency).

Each client's ``send(notification, address, callback)`` makes one provider call and returns a
``domain.Result`` (ok with the provider's message id, or temporary / unknown / permanent /
technical with an error text); it never raises for a provider's answer. ``callback`` is
``domain.callback_data(id, channel, attempt)``: WhatsApp echoes it in its status webhooks
(``biz_opaque_callback_data``), the SMS gateway in its delivery reports (``reference``), so a
status finds its notification by ``_id`` even when the send's reply never came.
"""

from nameko.extensions import DependencyProvider

from services.notify.channels.email import EmailChannel
from services.notify.channels.inapp import InappChannel
from services.notify.channels.sms import SmsChannel
from services.notify.channels.whatsapp import WhatsAppChannel
from services.notify.settings import Settings


def provider_timeout(config):
    return float(config.get("NOTIFY_PROVIDER_TIMEOUT_SECONDS", 10))


class ChannelSet:
    """The clients by channel name and the delivery settings, built from the service's
    config once per process."""

    def __init__(self, config):
        self.settings = Settings.of(config)
        timeout = provider_timeout(config)
        self.clients = {"whatsapp": WhatsAppChannel(config, timeout),
                        "sms": SmsChannel(config, timeout),
                        "email": EmailChannel(config, timeout),
                        "inapp": InappChannel()}

    def __getitem__(self, channel):
        return self.clients[channel]

    def close(self):
        for client in self.clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()


class Channels(DependencyProvider):
    """One ``ChannelSet`` per process (HTTP connections kept alive across messages)."""

    def setup(self):
        self.channels = ChannelSet(self.container.config)

    def stop(self):
        self.channels.close()

    def kill(self):
        self.channels.close()

    def get_dependency(self, worker_ctx):
        return self.channels
