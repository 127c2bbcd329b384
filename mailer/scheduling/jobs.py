"""Names of the scheduler's persistent jobs, and the one thing other processes may do to them.

Only the leading scheduler adds or changes jobs in APScheduler's table (``apscheduler_jobs``,
same database); a command that cancels, edits or reschedules a campaign deletes the campaign's
job row in its own transaction, so a job can never outlive the state that justified it. The
leader re-creates jobs for scheduled campaigns within ``MAILER_SCHEDULER_TICK`` seconds.
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Unicode, inspect
from sqlalchemy.orm import Session

JOB_TABLE = "apscheduler_jobs"
_jobs = Table(JOB_TABLE, MetaData(), Column("id", Unicode(191), primary_key=True))


def campaign_job_id(campaign_id: int) -> str:
    return f"campaign-{campaign_id}"


def digest_job_id(digest_id: int) -> str:
    return f"digest-{digest_id}"


def remove_job_row(session: Session, job_id: str) -> None:
    """Delete a job from APScheduler's table, if the table and the job exist."""
    connection = session.connection()
    if inspect(connection).has_table(JOB_TABLE):
        connection.execute(_jobs.delete().where(_jobs.c.id == job_id))
