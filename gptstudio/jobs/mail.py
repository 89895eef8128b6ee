"""The mail job: an e-mail whose first sending failed, sent again with
:func:`gptstudio.mail.send_mail` (its task, ``send_mail_task``, retries every five minutes for an
hour)."""

from __future__ import annotations

from gptstudio.jobs.tasks import body
from gptstudio.mail import send_mail

body("send_mail")(send_mail)
