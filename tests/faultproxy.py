"""A reverse proxy in front of the moto server that can make S3 misbehave on purpose.

Every request (method, path, query, headers, body) is forwarded to moto and the answer
relayed, unless a rule says otherwise: `fail` answers the next N matching requests with an
S3-style XML error without forwarding them, `fail_always` does so for every matching
request, `corrupt` relays the answer with its first byte flipped. Every request is recorded
with the status the client got.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import pytest

from tests.servers import MotoServer

#: Headers that belong to one connection and are never forwarded as they are.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)

#: The S3 error code sent for an injected status when the test names none.
DEFAULT_CODES = {
    500: "InternalError",
    503: "SlowDown",
    403: "AccessDenied",
    404: "NoSuchKey",
    400: "InvalidRequest",
}


@dataclass(frozen=True)
class Seen:
    """One request the proxy received and the status it answered with."""

    method: str
    path: str
    query: str
    status: int
    injected: bool


@dataclass
class Rule:
    """Which requests a fault applies to, what it does and how many times more."""

    action: Literal["fail", "corrupt", "damage"]
    method: str
    path: str
    query: str
    remaining: int | None
    status: int = 500
    code: str = "InternalError"

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            self.remaining != 0
            and (not self.method or method == self.method)
            and self.path in path
            and self.query in query
        )


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 forwarding to `upstream`, with injectable faults."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.requests: list[Seen] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fail(
        self,
        method: str = "PUT",
        *,
        count: int = 1,
        status: int = 503,
        code: str | None = None,
        path: str = "",
        query: str = "",
    ) -> None:
        """Answer the next `count` matching requests with an S3 error, without forwarding.

        A request matches when its method is `method` (empty: any) and its path and query
        contain `path` and `query`.
        """
        self._add(Rule("fail", method, path, query, count, status, code or _code(status)))

    def fail_always(
        self,
        method: str = "PUT",
        *,
        status: int = 500,
        code: str | None = None,
        path: str = "",
        query: str = "",
    ) -> None:
        """Answer every matching request with an S3 error from now on."""
        self._add(Rule("fail", method, path, query, None, status, code or _code(status)))

    def corrupt(
        self,
        method: str = "GET",
        *,
        count: int | None = None,
        path: str = "",
        query: str = "",
        keep_checksums: bool = False,
    ) -> None:
        """Relay matching answers with the first byte of the body flipped (same length).

        The answer's `x-amz-checksum-*` headers are dropped, as if the object had been
        stored so, unless `keep_checksums`: then botocore can see the damage itself.
        """
        action: Literal["corrupt", "damage"] = "damage" if keep_checksums else "corrupt"
        self._add(Rule(action, method, path, query, count))

    def clear(self) -> None:
        """Drop every fault; requests are forwarded untouched again."""
        with self._lock:
            self._rules.clear()

    def seen(self, method: str = "", *, path: str = "", query: str = "") -> list[Seen]:
        """The recorded requests with this method whose path and query contain these."""
        with self._lock:
            return [
                s
                for s in self.requests
                if (not method or s.method == method) and path in s.path and query in s.query
            ]

    def _add(self, rule: Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _take(self, method: str, path: str, query: str) -> Rule | None:
        """The first rule for this request, with one use of it counted."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, query):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)


def _code(status: int) -> str:
    return DEFAULT_CODES.get(status, "InjectedFault")


def error_body(code: str) -> bytes:
    """An S3 error document, as S3 sends it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>Injected by the fault proxy ({code}).</Message>"
        "<RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: keep-alive for botocore's pooled connections, and `Expect: 100-continue`
    # answered by the base class before the body is read.
    protocol_version = "HTTP/1.1"

    @property
    def proxy(self) -> FaultProxy:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        return proxy

    def do_GET(self) -> None:
        self._relay()

    def do_HEAD(self) -> None:
        self._relay()

    def do_PUT(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def do_DELETE(self) -> None:
        self._relay()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the recorded requests are what tests look at."""

    def _relay(self) -> None:
        parts = urlsplit(self.path)
        body = self._read_body()
        rule = self.proxy._take(self.command, parts.path, parts.query)
        if rule is not None and rule.action == "fail":
            self._answer(rule.status, [("Content-Type", "application/xml")], error_body(rule.code))
            self.proxy._record(Seen(self.command, parts.path, parts.query, rule.status, True))
            return
        status, headers, data = self._forward(body)
        if rule is not None and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
            if rule.action == "corrupt":
                headers = [h for h in headers if not h[0].lower().startswith("x-amz-checksum-")]
        self._answer(status, headers, data)
        self.proxy._record(Seen(self.command, parts.path, parts.query, status, rule is not None))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers end with an empty line
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(
            self.proxy.upstream_host, self.proxy.upstream_port, timeout=60
        )
        try:
            # The Host header is the client's own (it is part of the SigV4 signature).
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            if body or "Content-Length" in self.headers or self.command in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            headers = [
                (name, value)
                for name, value in response.getheaders()
                # A HEAD answer keeps the upstream Content-Length: the object's size.
                if name.lower() not in HOP_BY_HOP
                or (self.command == "HEAD" and name.lower() == "content-length")
            ]
            return response.status, headers, data
        finally:
            conn.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response_only(status)  # the upstream's own Date and Server are relayed
        for name, value in headers:
            self.send_header(name, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        elif not any(name.lower() == "content-length" for name, _ in headers):
            self.send_header("Content-Length", "0")
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)


@pytest.fixture
def fault_proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the (freshly reset) moto server."""
    with FaultProxy(moto.url) as proxy:
        yield proxy
