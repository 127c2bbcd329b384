"""The delivery engine: draw a campaign's audience into ``deliveries``, lease batches, hand them
to a transport with retries and pacing, and record every outcome so that each recipient is sent
exactly once, through crashes, retries and several workers.

    records.py    the deliveries table, its statuses, the named groups and the grouped counts
    audience.py   INSERT … SELECT the audience into ``deliveries`` (once per campaign)
    claims.py     lease batches (FOR UPDATE SKIP LOCKED on PostgreSQL), record outcomes
    recovery.py   expired leases -> in_doubt -> accepted (webhook evidence) | re-sent | held
    sender.py     the send loop: N requests in flight, one database writer
    engine.py     start_campaign, send_campaign, status_counts (the public interface)
    worker.py     run_worker: claims batches of any campaign that is sending
"""
