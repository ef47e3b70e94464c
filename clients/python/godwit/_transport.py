"""HTTP to the daemon: over its unix socket, or over TCP with TLS.

One connection per request keeps the client safe to share between
threads; streams (events, console, volume data) hold theirs until closed.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import urllib.parse
from typing import Optional

from .errors import GodwitError, Unreachable, from_response

DEFAULT_SOCKET = "/run/godwit/godwit.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]):
        super().__init__("godwit", timeout=timeout)
        self._path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(self._path)
        except BaseException:
            s.close()
            raise
        self.sock = s


def tls_context(ca_file: str, cert_file: Optional[str] = None, key_file: Optional[str] = None) -> ssl.SSLContext:
    """A TLS 1.3 context that trusts the daemon's CA and, given one, shows
    a client certificate the daemon issued."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class Transport:
    """Sends requests to one daemon and turns error answers into APIErrors."""

    def __init__(self, socket_path: Optional[str] = None, url: Optional[str] = None,
                 context: Optional[ssl.SSLContext] = None, token: Optional[str] = None,
                 timeout: Optional[float] = 60.0):
        self.timeout = timeout
        self.token = token
        if url:
            u = urllib.parse.urlsplit(url)
            if u.scheme == "http":
                raise GodwitError("daemon URL %r: the TCP API is served only over TLS (https://)" % url)
            if u.scheme != "https" or not u.hostname:
                raise GodwitError("daemon URL %r: want https://HOST:PORT" % url)
            if context is None:
                raise GodwitError("daemon URL %r: needs the daemon's CA, and a client certificate or a token (tls_dir= and token=, or GODWIT_TLS_DIR and GODWIT_TOKEN)" % url)
            self._host, self._port, self._context = u.hostname, u.port or 443, context
            self.where = url
            self._socket = None
        else:
            self._socket = socket_path or DEFAULT_SOCKET
            self.where = self._socket

    def _connect(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._socket is not None:
            return _UnixConnection(self._socket, timeout)
        return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context)

    def open(self, method: str, path: str, query: Optional[dict] = None, body=None,
             headers: Optional[dict] = None, timeout: Optional[float] = -1.0):
        """Sends a request and returns (connection, response) for a 2xx
        answer; raises the daemon's error otherwise. The caller reads the
        response and closes the connection."""
        if timeout == -1.0:
            timeout = self.timeout
        url = path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        h = {"Accept": "application/json"}
        if self.token and self._socket is None:
            h["Authorization"] = "Bearer " + self.token
        h.update(headers or {})
        conn = self._connect(timeout)
        try:
            conn.request(method, url, body=body, headers=h)
            # Kept for streams: close() shuts it down to end a blocked read
            # (http.client drops conn.sock from a response that will close).
            sock = conn.sock
            resp = conn.getresponse()
            resp.godwit_socket = sock
        except ssl.SSLError as e:
            conn.close()
            raise Unreachable("TLS with the godwit daemon at %s failed: %s" % (self.where, e)) from e
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            if isinstance(e, TimeoutError):
                raise Unreachable("the godwit daemon at %s did not answer in %ss" % (self.where, timeout)) from e
            raise Unreachable("cannot reach the godwit daemon at %s: %s (is `godwit daemon` running, and are you root?)" % (self.where, e)) from e
        if resp.status >= 300:
            try:
                data = resp.read(1 << 20)
            finally:
                conn.close()
            raise from_response(resp.status, resp.reason, data)
        return conn, resp

    def request(self, method: str, path: str, query: Optional[dict] = None, body=None,
                headers: Optional[dict] = None, timeout: Optional[float] = -1.0) -> bytes:
        """Sends a request and returns the body of a 2xx answer."""
        conn, resp = self.open(method, path, query, body, headers, timeout)
        try:
            return resp.read()
        except OSError as e:
            raise Unreachable("the godwit daemon at %s broke off its answer: %s" % (self.where, e)) from e
        finally:
            conn.close()


def from_environment() -> dict:
    """The connection settings the godwit CLI reads: GODWIT_SOCKET, or
    GODWIT_HOST with GODWIT_TLS_DIR and GODWIT_TOKEN."""
    return {
        "socket": os.environ.get("GODWIT_SOCKET") or None,
        "url": os.environ.get("GODWIT_HOST") or None,
        "tls_dir": os.environ.get("GODWIT_TLS_DIR") or None,
        "token": os.environ.get("GODWIT_TOKEN") or None,
    }
