"""Local stand-ins for the third parties notify talks to, speaking their wire protocols: the
WhatsApp Business Cloud API (``WhatsAppStandin``), an SMTP server (``SmtpStandin``, aiosmtpd)
and an HTTP SMS gateway (``SmsStandin``). The integration tests start them in the test's
process; ``make run`` starts them in a child process (``python -m services.notify.standins``,
see ``services/notify/seed.py``) so a newcomer sees messages flow without any account.
"""

from services.notify.standins.sms import SmsStandin
from services.notify.standins.smtp import SmtpStandin
from services.notify.standins.whatsapp import WhatsAppStandin

__all__ = ["SmsStandin", "SmtpStandin", "WhatsAppStandin"]
