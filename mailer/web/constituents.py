"""What the constituent pages do to the list, kept apart from HTTP: sign up (double opt-in),
confirm, change preferences, unsubscribe, and the system emails those steps send.

Status changes go through ``subscribers.service`` so each one is recorded with its cause.
System emails are queued (``mailer.delivery.outgoing.queue_mail``) in the same transaction
as the change that owes them and sent by the queue runner, so a slow mail API never holds a
request or a database transaction, and the page's timing does not depend on whether the
address was known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from mailer.delivery.oneoff import SystemMail
from mailer.delivery.outgoing import queue_mail, queue_mail_now
from mailer.errors import InvalidInput
from mailer.storage.base import utcnow
from subscribers import service
from subscribers.addresses import normalize_email
from subscribers.models import (
    ACTIVE,
    FREQUENCIES,
    PENDING,
    UNSUBSCRIBED,
    Subscriber,
    SubscriberTopic,
    Topic,
)
from subscribers.places import fill_place
from subscribers.text import clean_text

log = logging.getLogger("mailer.web")
#: How long a confirmation link works.
CONFIRM_MAX_AGE = 7 * 24 * 3600
FREQUENCY_LABELS = {
    "immediate": "Every release, as it is published",
    "daily": "A daily digest",
    "weekly": "A weekly digest",
}
SOURCE = "web form"


@dataclass
class Signup:
    email: str
    name: str | None = None
    zip: str | None = None
    topics: list[str] = field(default_factory=list)
    frequency: str = "immediate"


def validate_signup(raw: dict[str, object], known_topics: set[str]) -> tuple[Signup, dict]:
    """Clean the subscribe form. Returns the signup and {field: message} for each problem."""
    errors: dict[str, str] = {}
    email = str(raw.get("email") or "").strip()
    try:
        email = normalize_email(email)
    except InvalidInput:
        errors["email"] = "Enter an email address like name@example.com."
    zip_code = str(raw.get("zip") or "").strip()
    if zip_code and not _is_zip(zip_code):
        errors["zip"] = "Enter a 5-digit ZIP code (or ZIP+4), or leave it empty."
    frequency = str(raw.get("frequency") or "immediate")
    if frequency not in FREQUENCIES:
        frequency = "immediate"
    topics = [t for t in raw.get("topics", []) if isinstance(t, str) and t in known_topics]
    name = clean_text(str(raw.get("name") or ""), 200)
    return Signup(email, name, zip_code or None, sorted(set(topics)), frequency), errors


def _is_zip(value: str) -> bool:
    digits = value.replace("-", "")
    return digits.isdigit() and (len(value) == 5 or (len(value) == 10 and value[5] == "-"))


def topic_choices(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.name)))


#: Built once: statements run on every signup (building one costs more than running it).
_TOPICS = select(Topic.slug, Topic.id, Topic.name)
_SUBSCRIBER_ID = select(Subscriber.id).where(Subscriber.email == bindparam("email"))


def signup_topics(session: Session) -> dict[str, tuple[int, str]]:
    """slug -> (id, name) of every topic a signup may choose (read once per signup:
    validating the form, linking the new subscriber and naming the chosen topics in the email
    all use it)."""
    return {slug: (topic_id, name) for slug, topic_id, name
            in session.connection().execute(_TOPICS)}


def subscribe(session: Session, signup: Signup, *, ip: str | None, links,
              queue: bool = True, topics: dict[str, tuple[int, str]] | None = None) -> SystemMail:
    """Record a web signup and queue (when ``queue``) the one email it owes; returns it.
    ``topics``: ``signup_topics``, when the caller has read them already.

    Whatever the address's state, the caller shows the same page; what differs is only the
    email, which goes to the address's owner: a confirmation link for a new, pending or
    previously unsubscribed address, or "you're already subscribed" for an active one.
    Nothing about an unsubscribed, bounced or complained address changes until its owner
    follows the new confirmation link.
    """
    # The address's id alone first: most signups are new addresses, which need no ORM object.
    found = session.connection().execute(_SUBSCRIBER_ID, {"email": signup.email}).scalar()
    subscriber = session.get(Subscriber, found) if found is not None else None
    if subscriber is None:
        mail = _new_signup(session, signup, ip, topics)
    elif subscriber.status == ACTIVE:
        mail = SystemMail("already_subscribed",
                          f"You're already subscribed to {links.office_name}",
                          subscriber.id, subscriber.email, subscriber.name,
                          _welcome_context(session, subscriber))
    else:
        if subscriber.status == PENDING:
            _apply(session, subscriber, signup)
            subscriber.consent_ip = ip
        mail = confirmation_mail(session, subscriber, links)
    if queue:
        queue_mail_now(session, mail)
    return mail


def _new_signup(session: Session, signup: Signup, ip: str | None,
                topics: dict[str, tuple[int, str]] | None) -> SystemMail:
    """A new address: a pending subscriber (marked as sent its confirmation, which the
    caller queues in this transaction) and the confirmation email it owes."""
    topics = topics if topics is not None else signup_topics(session)
    subscriber_id, name = service.add_pending(
        session, email=signup.email, name=signup.name, zip=signup.zip,
        topic_ids=[topics[t][0] for t in signup.topics], frequency=signup.frequency,
        consent_source=SOURCE, consent_ip=ip, confirm_sent_at=utcnow())
    return SystemMail("confirm_subscription", "Please confirm your subscription",
                      subscriber_id, signup.email, name,
                      _confirmation_context(sorted(topics[t][1] for t in signup.topics)))


def confirmation_mail(session: Session, subscriber: Subscriber, links) -> SystemMail:
    """The double opt-in email; its signed link (expiring after CONFIRM_MAX_AGE) is made by
    the queue runner when it sends.

    Marks the subscriber as sent a confirmation, so ``mailer.delivery.confirmations`` (the
    import's double opt-in mailer) does not send them a second one."""
    subscriber.confirm_sent_at = utcnow()
    return _confirmation(subscriber, signup_topic_names(
        session, service.topic_slugs(session, subscriber)))


def _confirmation(subscriber: Subscriber, topic_names: list[str]) -> SystemMail:
    return SystemMail("confirm_subscription", "Please confirm your subscription", subscriber.id,
                      subscriber.email, subscriber.name, _confirmation_context(topic_names))


def _confirmation_context(topic_names: list[str]) -> dict:
    return {"topics": topic_names, "expires_hours": CONFIRM_MAX_AGE // 3600}


def confirm(session: Session, subscriber: Subscriber, *, links) -> bool:
    """Activate a confirmed address (lifting an earlier unsubscribe: this is the person's own
    fresh consent) and queue the welcome email the first time; True when one was queued."""
    if subscriber.status == ACTIVE:
        return False
    service.confirm(session, subscriber, cause="confirmed by email link")
    queue_mail(session, SystemMail(
        "welcome", f"Welcome to news from {links.office_name}", subscriber.id,
        subscriber.email, subscriber.name, _welcome_context(session, subscriber)))
    return True


def _welcome_context(session: Session, subscriber: Subscriber) -> dict:
    return {"topics": signup_topic_names(session, service.topic_slugs(session, subscriber)),
            "frequency": subscriber.frequency}


def signup_topic_names(session: Session, slugs) -> list[str]:
    slugs = list(slugs)
    if not slugs:
        return []
    return list(session.scalars(select(Topic.name).where(Topic.slug.in_(slugs))
                                .order_by(Topic.name)))


def save_preferences(session: Session, subscriber: Subscriber, form, known: set[str]) -> None:
    """Apply the preference form: name, ZIP, topics, frequency. Saving also re-subscribes
    someone who had unsubscribed: only they hold the signed link, and they asked to.
    Raises InvalidInput for a bad ZIP."""
    signup, errors = validate_signup({**_as_dict(form), "email": subscriber.email}, known)
    if errors.get("zip"):
        raise InvalidInput(errors["zip"])
    _apply(session, subscriber, signup)
    _apply_pause(subscriber, str(form.get("pause") or ""))
    if subscriber.status == UNSUBSCRIBED:
        service.confirm(session, subscriber, cause="resubscribed on the preference page")


#: The pause choices offered on the preference page (days); "resume" ends a pause.
PAUSE_DAYS = (30, 90)


def _apply_pause(subscriber: Subscriber, choice: str) -> None:
    if choice == "resume":
        subscriber.paused_until = None
    elif choice.isdigit() and int(choice) in PAUSE_DAYS:
        subscriber.paused_until = utcnow() + timedelta(days=int(choice))


def paused_until(subscriber: Subscriber):
    """When the subscriber's pause ends, or None when they are not paused."""
    until = subscriber.paused_until
    return until if until is not None and until > utcnow() else None


def unsubscribe(session: Session, subscriber: Subscriber, *, one_click: bool) -> None:
    """Unsubscribe from everything and suppress the address (idempotent)."""
    cause = "one-click unsubscribe (RFC 8058)" if one_click else "unsubscribe page"
    service.unsubscribe(session, subscriber, cause=cause)


def _apply(session: Session, subscriber: Subscriber, signup: Signup) -> None:
    subscriber.name = signup.name
    if signup.zip != subscriber.zip:  # a new ZIP: the place follows it (as they gave no county)
        subscriber.zip = signup.zip
        subscriber.county, subscriber.state, subscriber.city = fill_place(signup.zip, None, None)
    subscriber.frequency = signup.frequency
    service.set_topics(session, subscriber, signup.topics)


def followed_topics(session: Session, subscriber: Subscriber) -> set[str]:
    return set(session.scalars(
        select(Topic.slug).join(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .where(SubscriberTopic.subscriber_id == subscriber.id)
    ))


def _as_dict(form) -> dict[str, object]:
    data: dict[str, object] = {k: form.get(k) for k in ("name", "zip", "frequency")}
    data["topics"] = form.getlist("topics") if hasattr(form, "getlist") else form.get("topics", [])
    return data


def mask_email(email: str) -> str:
    """``j•••@example.org``: enough for its owner to recognise, little for anyone else."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if domain else "•••"
