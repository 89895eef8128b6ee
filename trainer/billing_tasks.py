"""Billing tasks on the Huey queue: metered overage to Stripe and end-of-grace e-mails
(periodic), and billing e-mails that could not be sent at once (retried).

The worker registers them by importing this module (``trainer/tasks.py``:
``from trainer import billing_tasks  # noqa: F401``). Both are safe to run twice: usage carries
idempotent meter-event identifiers and ``reported_at``; grace e-mails are recorded once each.
"""

from __future__ import annotations

from huey import crontab

from gptstudio.jobs.queue import huey


@huey.periodic_task(crontab(minute="*/5"))
def report_usage_task() -> int:
    """Every five minutes: report unreported overage to Stripe (see gptstudio.jobs.billing)."""
    from gptstudio.jobs.billing import report_usage

    return report_usage()


@huey.periodic_task(crontab(minute="17"))
def grace_period_task() -> int:
    """Hourly: e-mail subscribers whose failed-payment grace period has ended."""
    from gptstudio.jobs.billing import notify_grace_ended

    return notify_grace_ended()


@huey.task(retries=12, retry_delay=300)
def send_mail_task(to: str, subject: str, body: str) -> None:
    """A billing e-mail whose first sending failed: tried again every 5 minutes for an hour."""
    from gptstudio.mail import send_mail

    send_mail(to=to, subject=subject, body=body)
