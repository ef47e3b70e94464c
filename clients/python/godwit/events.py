"""The daemon's event stream (/v1/events, server-sent events) as an iterator.

    with client.events(vm="web1") as events:
        for ev in events:            # godwit.Event
            print(ev.type, ev.lifecycle or ev.operation)

The stream is subscribed when events() returns, so what happens after
that is seen. When the connection ends (the daemon drops a client that
falls behind, or restarts) the stream reconnects and resumes after the
last event it gave (Last-Event-ID); an event of type "lost" says when
some could not be resent.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Iterator, Optional

from ._generated import Event
from .errors import APIError, GodwitError, Timeout, Unreachable

_END = object()


def parse(lines) -> Iterator[tuple[str, str, str]]:
    """Reads server-sent events from lines (str, with or without their
    newline) and yields (id, event, data) for each complete one."""
    ev_id, ev_type, data = "", "", []
    for line in lines:
        line = line.rstrip("\r\n")
        if line == "":
            if data:
                yield ev_id, ev_type or "message", "\n".join(data)
            ev_id, ev_type, data = "", "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "id":
            ev_id = value
        elif name == "event":
            ev_type = value
        elif name == "data":
            data.append(value)


class EventStream:
    """An iterator of godwit.Event; close it (or use `with`) when done.

    timeout: end the iteration when no event came for this many seconds
    (None: wait for ever). reconnect: resume after a dropped connection
    (tries for about reconnect_for seconds before raising Unreachable)."""

    # The daemon sends a keep-alive comment every 15s: a connection quiet
    # for longer than this is dead.
    read_timeout = 60.0

    def __init__(self, transport, query: dict, after: Optional[int] = None,
                 timeout: Optional[float] = None, reconnect: bool = True, reconnect_for: float = 10.0):
        self._transport = transport
        self._query = {k: v for k, v in query.items() if v not in (None, "")}
        self._timeout = timeout
        self._reconnect = reconnect
        self._reconnect_for = reconnect_for
        self.last_id: Optional[int] = after
        self._q: queue.Queue = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sock = None
        self._done = False
        # The first connection is made here, so that the caller's next
        # action is seen and a refusal (401, 400) is raised at once.
        conn, resp = self._open()
        self._thread = threading.Thread(target=self._run, args=(conn, resp), name="godwit-events", daemon=True)
        self._thread.start()

    def _open(self):
        headers = {"Accept": "text/event-stream"}
        if self.last_id:
            headers["Last-Event-ID"] = str(self.last_id)
        conn, resp = self._transport.open("GET", "/v1/events", self._query, headers=headers, timeout=self.read_timeout)
        with self._lock:
            if self._closed.is_set():
                conn.close()
                raise GodwitError("event stream closed")
            self._sock = resp.godwit_socket
        return conn, resp

    def _run(self, conn, resp):
        while True:
            try:
                self._read(resp)
            except (OSError, ValueError):
                pass  # a broken or timed-out connection: reconnect
            finally:
                conn.close()
            if self._closed.is_set():
                return
            if not self._reconnect:
                self._q.put(_END)
                return
            try:
                conn, resp = self._reopen()
            except BaseException as e:  # noqa: B902 - handed to the iterating thread
                if not self._closed.is_set():
                    self._q.put(e)
                return

    def _reopen(self):
        deadline = time.monotonic() + self._reconnect_for
        wait = 0.1
        while True:
            try:
                return self._open()
            except Unreachable:
                if time.monotonic() >= deadline or self._closed.is_set():
                    raise
            except APIError as e:
                if e.status != 503 or time.monotonic() >= deadline:
                    raise
            time.sleep(wait)
            wait = min(2 * wait, 1.0)

    def _read(self, resp):
        def lines():
            while not self._closed.is_set():
                line = resp.readline()
                if not line:
                    return
                yield line.decode("utf-8", "replace")

        for ev_id, _, data in parse(lines()):
            ev = Event.from_dict(json.loads(data))
            if ev_id:
                self.last_id = int(ev_id)
            self._q.put(ev)

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Event:
        if self._done:
            raise StopIteration
        try:
            item = self._q.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise StopIteration from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, BaseException):
            self._done = True
            raise item
        return item

    def next(self, timeout: Optional[float] = None) -> Event:
        """The next event; raises Timeout when none comes within timeout."""
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            raise Timeout("no event within %ss" % timeout) from None
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Ends the stream and its connection."""
        self._done = True
        with self._lock:
            self._closed.set()
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass
