"""The delivery engine: draw a campaign's audience into ``deliveries``, lease batches, hand them
to a transport with retries and pacing, and record every outcome so that each recipient is sent
exactly once, through crashes, retries and several workers.

    records.py        the deliveries table, its statuses, the named groups, grouped counts
    audience.py       who a campaign reaches; INSERT … SELECT it into ``deliveries`` (once)
    claims.py         lease batches (FOR UPDATE SKIP LOCKED on PostgreSQL), record outcomes
    recovery.py       expired leases -> in_doubt -> accepted (evidence) | re-sent | held
    handoff.py        one batch to the transport: retries, refusals isolated, pause decision
    sender.py         the send loop: N requests in flight, one database writer
    pipeline.py       prepare a campaign once; the batch pipeline every mode shares
    engine.py         start_campaign, send_campaign (foreground), status_counts
    worker.py         run_worker: takes turns on every campaign that is sending
    fanout.py         spreads a large foreground send over helper processes (helper.py)
    oneoff.py         test copies and system emails: the only other path to a transport
    confirmations.py  double opt-in emails to pending subscribers, at most once each
"""
