"""Run a generator in a second process, so reading and writing an import use both cores.

A million-row import spends about half its CPU reading and validating rows and half in the
database. ``produced_elsewhere`` lets a worker process do the first half while this process
does the second: the worker runs the generator and sends each item through a bounded queue
(so at most ``ahead`` items wait: memory stays flat however long the file is).
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue as queue_module
from collections.abc import Callable, Generator
from typing import Any

#: How long to wait for the worker before checking that it is still alive, seconds.
_POLL = 1.0


def produced_elsewhere(factory: Callable[..., Generator], *args: Any,
                       ahead: int = 2) -> Generator[Any, None, Any]:
    """Yield what ``factory(*args)`` yields, computed in a child process, and return what it
    returns (use ``result = yield from produced_elsewhere(...)``).

    Must: ``factory`` must not touch anything the caller has open (a database connection):
    the child is forked where the platform allows, as a spawned child would re-run the
    caller's unguarded ``__main__``. Items, the return value and exceptions must pickle.
    An exception in the child is raised here; one that does not pickle arrives as
    RuntimeError with its message. Closing this generator early stops the child.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    channel = context.Queue(maxsize=ahead)
    worker = context.Process(target=_work, args=(channel, factory, args), daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = _receive(channel, worker)
            if kind == "item":
                yield payload
            elif kind == "done":
                return payload
            else:
                raise payload
    finally:
        if worker.is_alive():
            worker.terminate()
        worker.join()
        channel.close()


def _receive(channel, worker) -> tuple[str, Any]:
    while True:
        try:
            return channel.get(timeout=_POLL)
        except queue_module.Empty:
            if worker.is_alive():
                continue
        # The worker has exited: whatever it sent is already in the pipe.
        try:
            return channel.get(timeout=_POLL)
        except queue_module.Empty:
            raise RuntimeError(
                f"import reader process ended unexpectedly (exit code {worker.exitcode})"
            ) from None


def _work(channel, factory: Callable[..., Generator], args: tuple) -> None:
    try:
        items = factory(*args)
        while True:
            try:
                item = next(items)
            except StopIteration as stop:
                channel.put(("done", stop.value))
                return
            channel.put(("item", item))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the parent
        channel.put(("error", _picklable(exc)))
    finally:
        channel.close()
        channel.join_thread()  # everything sent is in the pipe before the process ends


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling failure
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


__all__ = ["produced_elsewhere"]
