"""Outgoing mail over SMTP; with no SMTP host configured, mails are written to the log."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from gptstudio.errors import DomainError
from gptstudio.settings import get_settings

log = logging.getLogger(__name__)


class MailNotSent(DomainError):
    status_code = 503
    type = "server_error"
    code = "mailnotsent"


def send_mail(*, to: str, subject: str, body: str) -> None:
    """Send a plain-text mail, or log it in development when no SMTP host is set."""
    settings = get_settings()
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if not settings.smtp_host:
        log.info("mail (no SMTP host configured) to=%s subject=%s\n%s", to, subject, body)
        return
    try:
        if settings.smtp_security == "ssl":
            context = ssl.create_default_context()
            with smtplib.SMTP_SSL(
                settings.smtp_host, settings.smtp_port, context=context, timeout=15
            ) as smtp:
                _deliver(smtp, message)
        else:
            with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
                if settings.smtp_security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                _deliver(smtp, message)
    except (OSError, smtplib.SMTPException) as error:
        log.error("mail to %s failed: %s", to, error)
        raise MailNotSent(
            "The e-mail could not be sent right now; please try again later."
        ) from None


def _deliver(smtp: smtplib.SMTP, message: EmailMessage) -> None:
    settings = get_settings()
    if settings.smtp_username:
        smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
    smtp.send_message(message)
