"""Delivery status: what the mail provider reports after a hand-off, and what follows from it.

    POST /webhooks/sendgrid (webhook.py: signature, age, size, JSON)
    mailer events import FILE (cli/tracking.py)
            │
            ▼
    ingest.py ── events.py (one normalized DeliveryEvent per provider event)
            ├─▶ delivery_events (models.py: the one event log, stored once per event id)
            ├─▶ advance.py → deliveries: status advances monotonically, engagement times
            ├─▶ suppression.py: bounced / complained / unsubscribed subscribers
            └─▶ guard.py: complaint rate warns at 0.1 %, pauses sending campaigns at 0.3 %
    reports.py (+ report_html.py, charts.py): status counts, rates, breakdowns, timelines
    logs.py: structured JSON log lines (``log_event``)
"""
