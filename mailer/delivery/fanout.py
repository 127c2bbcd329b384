"""Spreading one foreground send over the machine's cores.

Personalization, payload encoding and HTTP are Python work bound to one core by the GIL, so a
large ``campaigns send`` starts helper processes that run the same claim → hand-off → record
loop on the same campaign as ordinary workers (their own worker names, leases and pids), while
the calling process keeps waiting for every row to settle. Exactly once rests on the claim
protocol as it does for ``mailer worker``: nothing here coordinates rows.

A helper stops (letting its batches in flight finish and be recorded) when the parent asks,
and on its own when the parent process is gone (kill -9 closes the pipe it watches): it must
never go on sending for a send nobody watches. Rows it leaves behind are settled by recovery
like any dead worker's.

``MAILER_CONCURRENCY``, ``MAILER_MAX_IN_FLIGHT`` and ``MAILER_RATE_LIMIT`` stay totals for the
whole send: requests in flight are split between the processes, and a rate-limited send is
not spread at all.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import threading
import time

from mailer.settings import Settings

log = logging.getLogger("mailer.delivery")

#: Left to itself (MAILER_SEND_PROCESSES=0), a send spreads only with this many batches for
#: each process: a helper costs a second or two of CPU to start (imports, rendering), which a
#: 100-batch send would spend mostly waiting for (measured: 100k recipients 4.5-5 s in one
#: process, 8-10 s spread over two on this 2-core machine).
AUTO_MIN_BATCHES_PER_PROCESS = 200
#: With an explicit MAILER_SEND_PROCESSES, each process still needs this many batches.
MIN_BATCHES_PER_PROCESS = 5
#: Upper bound when MAILER_SEND_PROCESSES is 0 (one per core).
MAX_AUTO_PROCESSES = 4


def process_count(settings: Settings, pending: int) -> int:
    """How many processes (the caller included) should send ``pending`` recipients."""
    explicit = settings.send_processes
    wanted = explicit or min(os.cpu_count() or 1, MAX_AUTO_PROCESSES)
    if wanted <= 1 or settings.rate_limit > 0:
        return 1
    per_process = MIN_BATCHES_PER_PROCESS if explicit else AUTO_MIN_BATCHES_PER_PROCESS
    by_size = pending // (per_process * settings.batch_size)
    return max(1, min(wanted, by_size, settings.concurrency))


def share(settings: Settings, processes: int) -> Settings:
    """Settings for one of ``processes`` senders: their requests in flight add up to
    MAILER_CONCURRENCY at the start and to MAILER_MAX_IN_FLIGHT at most."""
    if processes <= 1:
        return settings
    return settings.model_copy(update={
        "concurrency": max(1, settings.concurrency // processes),
        "max_in_flight": max(1, settings.max_in_flight // processes)})


class Helpers:
    """``count`` helper processes sending ``campaign_id``; ``finish`` collects them.

    Each helper is ``python -m mailer.delivery.helper`` (not ``multiprocessing``, which would
    re-import the caller's main module), reading its arguments from its stdin and reporting
    its counts as JSON lines on its stdout. The parent holds the helper's stdin open: closing
    it (``stop``, or the parent dying in any way, kill -9 included) tells the helper to stop.
    """

    def __init__(self, settings: Settings, database_url: str, campaign_id: int, count: int):
        self._latest: dict[int, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []
        for index in range(count):
            proc = subprocess.Popen([sys.executable, "-m", "mailer.delivery.helper"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            proc.stdin.write(pickle.dumps((settings, database_url, campaign_id)))
            proc.stdin.write(b"\n" + ARGS_END)
            proc.stdin.flush()
            reader = threading.Thread(target=self._read, args=(index, proc.stdout),
                                      daemon=True, name=f"send-helper-{index}")
            reader.start()
            self._procs.append(proc)
            self._readers.append(reader)

    def _read(self, index: int, stream) -> None:
        for line in stream:
            try:
                counts = tuple(json.loads(line))
            except ValueError:
                continue
            with self._lock:
                self._latest[index] = counts  # type: ignore[assignment]

    def totals(self) -> tuple[int, int, int, int]:
        """(accepted, failed, skipped, in_doubt) the helpers reported so far."""
        with self._lock:
            latest = list(self._latest.values())
        return tuple(sum(c[k] for c in latest) for k in range(4))  # type: ignore[return-value]

    def stop(self) -> None:
        for proc in self._procs:
            _close(proc.stdin)

    def finish(self, timeout: float) -> tuple[int, int, int, int]:
        """Wait for the helpers (they end when nothing is left to claim, or after ``stop``);
        one still running after ``timeout`` is terminated (recovery settles its rows)."""
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("send helper %s did not stop in time; terminating it", proc.pid)
                proc.terminate()
                proc.wait(5)
            _close(proc.stdin)
        for reader in self._readers:
            reader.join(5)
        return self.totals()


#: Ends the pickled arguments a helper reads from stdin (see ``mailer.delivery.helper``).
ARGS_END = b"--end-of-arguments--\n"


def _close(stream) -> None:
    try:
        stream.close()
    except OSError:
        pass
