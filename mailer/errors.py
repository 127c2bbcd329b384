"""The product's error hierarchy. Every error a person can cause or fix is a ``MailerError``;
the CLI prints its message as one line on stderr and exits non-zero, the web app turns it into
a 4xx answer.

    MailerError
    ├── ConfigError            a setting is missing or invalid
    ├── NotFound               an id, slug or address that does not exist
    ├── InvalidInput           a file, URL, query or value that cannot be used
    │   ├── IngestError        a release, page or feed that cannot be imported
    │   ├── QueryError         a segment query that does not parse (names the position)
    │   ├── UsageError         a command given a combination of options it cannot take
    │   └── TemplateError      a template that fails to compile, render or lint
    ├── InvalidTransition      a campaign cannot move from its state to the one asked for
    ├── PolicyRefusal          approval, quiet hours or election blackout forbid the action
    └── TransportError         see ``mailer.transports.errors`` for the sub-tree
"""

from __future__ import annotations


class MailerError(Exception):
    """Base of every error the product reports to a person. ``str(err)`` is one line."""

    exit_code = 1


class ConfigError(MailerError):
    exit_code = 2


class NotFound(MailerError):
    pass


class InvalidInput(MailerError):
    pass


class IngestError(InvalidInput):
    pass


class QueryError(InvalidInput):
    """A segment query that does not parse; ``position`` is the 0-based offset in the query."""

    def __init__(self, message: str, position: int | None = None):
        self.position = position
        if position is not None:
            message = f"{message} at position {position}"
        super().__init__(message)


class UsageError(InvalidInput):
    """Options that cannot go together (or none of those needed): exits 2, like click's."""

    exit_code = 2


class TemplateError(InvalidInput):
    pass


class InvalidTransition(MailerError):
    pass


class PolicyRefusal(MailerError):
    pass


class TransportError(MailerError):
    pass
