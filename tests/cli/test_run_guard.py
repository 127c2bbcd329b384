import threading

from mailer.cli.web import _guard


def test_a_crashed_background_loop_is_restarted_until_the_process_stops():
    stop = threading.Event()
    calls = []

    def loop(event):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("database went away")

    _guard("worker", loop, stop, restart_after=0)
    assert len(calls) == 3


def test_a_stopped_process_does_not_restart_the_loop():
    stop = threading.Event()
    calls = []

    def loop(event):
        calls.append(1)
        event.set()
        raise RuntimeError("boom while stopping")

    _guard("scheduler", loop, stop, restart_after=0)
    assert len(calls) == 1
