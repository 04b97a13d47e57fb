"""strata_client: a small Python client for stratad's protocol (proto/strata.proto).

The daemon's tests use it to show that the protocol is not tied to C. It is
the framing (4-byte big-endian length, then one protobuf message) plus a
connection that matches replies to requests; it knows nothing of models.

The .proto is compiled with `protoc --python_out` into a temporary directory
the first time pb2() is called (nothing generated is committed). Needs the
Debian packages python3-protobuf and protobuf-compiler.

    import strata_client as sc
    with sc.connect("/run/strata/strata.sock") as conn:
        rid = conn.request("generate", prompt="Hello", max_tokens=8, temperature=0.0)
        for resp in conn.responses(rid):
            ...
"""

import atexit
import importlib
import itertools
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

PROTOCOL_VERSION = 1          # STRATA_PROTOCOL_VERSION in proto/frame.h
REQUEST_CAP_DEFAULT = 1 << 20  # the server's default cap on a request body (bytes)
RESPONSE_CAP = 64 << 20        # the largest response body the server sends (bytes)

# Response bodies that end a request (strata.proto: "exactly one terminal Response").
TERMINAL = ("done", "tokenize", "detokenize", "status", "cancel", "score", "error")

_pb2 = None


def default_proto_path():
    """strata.proto from $STRATA_SRCDIR, else relative to this file (tests/pyclient/)."""
    src = os.environ.get("STRATA_SRCDIR")
    if src:
        return os.path.join(src, "proto", "strata.proto")
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "proto", "strata.proto")


def pb2(proto=None, protoc=None):
    """The generated strata_pb2 module, compiled once per process.

    proto: path of strata.proto (default: default_proto_path()).
    protoc: the compiler (default: $PROTOC, else "protoc" on PATH).
    """
    global _pb2
    if _pb2 is not None:
        return _pb2
    proto = os.path.abspath(proto or default_proto_path())
    protoc = protoc or os.environ.get("PROTOC") or "protoc"
    out = tempfile.mkdtemp(prefix="strata-pb2-")
    atexit.register(shutil.rmtree, out, True)
    subprocess.run([protoc, "-I", os.path.dirname(proto), "--python_out=" + out, proto],
                   check=True)
    sys.path.insert(0, out)
    try:
        _pb2 = importlib.import_module("strata_pb2")
    finally:
        sys.path.remove(out)
    return _pb2


class ProtocolError(Exception):
    """The peer broke the framing or sent bytes that are not a message."""


class FrameTooLarge(ProtocolError):
    """A length prefix above the cap; the stream cannot be resynchronised."""

    def __init__(self, length, cap):
        super().__init__("frame of %d bytes is above the cap of %d bytes" % (length, cap))
        self.length = length
        self.cap = cap


class ServerError(Exception):
    """The server answered with an Error (code is the ErrorCode name, e.g. "ERROR_CODE_NOT_FOUND")."""

    def __init__(self, request_id, code, message):
        super().__init__("%s: %s" % (code, message))
        self.request_id = request_id
        self.code = code
        self.message = message


def frame(data):
    """One frame: the 4-byte big-endian length of data, then data (bytes)."""
    if len(data) > 0xFFFFFFFF:
        raise ValueError("a frame body is at most 4 GiB - 1")
    return struct.pack(">I", len(data)) + data


def write_frame(sock, data):
    """Send data (bytes: one serialized message) as one frame; sendall loops over partial writes."""
    sock.sendall(frame(data))


def _recv_exact(sock, n):
    """Up to n bytes: fewer only when the peer closed first."""
    parts = []
    while n > 0:
        try:
            b = sock.recv(min(n, 1 << 20))
        except InterruptedError:  # Python retries EINTR itself (PEP 475); kept for clarity
            continue
        if not b:
            break
        parts.append(b)
        n -= len(b)
    return b"".join(parts)


def read_frame(sock, cap=RESPONSE_CAP):
    """The body of the next frame (bytes), or None on a clean EOF between frames.

    The prefix is checked against cap before anything is read for the body
    (FrameTooLarge); EOF inside a frame raises ProtocolError.
    """
    hdr = _recv_exact(sock, 4)
    if not hdr:
        return None
    if len(hdr) < 4:
        raise ProtocolError("connection closed inside a length prefix")
    (n,) = struct.unpack(">I", hdr)
    if n > cap:
        raise FrameTooLarge(n, cap)
    body = _recv_exact(sock, n)
    if len(body) < n:
        raise ProtocolError("connection closed inside a frame (%d of %d bytes)" % (len(body), n))
    return body


def body_of(resp):
    """The name of the Response's body ("piece", "done", ... or None)."""
    return resp.WhichOneof("body")


class Connection:
    """One connection to stratad. Not thread-safe: one user at a time."""

    def __init__(self, sock, cap=RESPONSE_CAP):
        self.sock = sock
        self.cap = cap
        self.server_version = None     # Response.protocol_version, once seen
        self._ids = itertools.count(1)
        self._sent_version = False
        self._held = {}                # id -> responses read while waiting for another id

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, req):
        """Send a Request. Fills in a fresh id when req.id is 0 and the
        protocol version on the first request unless already set. Returns the id."""
        if req.id == 0:
            req.id = next(self._ids)
        if not self._sent_version and req.protocol_version == 0:
            req.protocol_version = PROTOCOL_VERSION
        self._sent_version = True
        write_frame(self.sock, req.SerializeToString())
        return req.id

    def request(self, kind, id=0, **fields):
        """Build and send a Request whose body is `kind` ("generate", "tokenize",
        "detokenize", "status", "cancel") with the given fields, e.g.
        request("generate", prompt="Hi", max_tokens=4, stop=["\\n"]).
        Returns the request id."""
        p = pb2()
        req = p.Request(id=id)
        getattr(req, kind).SetInParent()  # an empty body (Status) must still select the oneof
        for name, value in fields.items():
            target = getattr(req, kind)
            if isinstance(value, (list, tuple)):
                getattr(target, name).extend(value)
            else:
                setattr(target, name, value)  # sets a one-member oneof (optional) too
        return self.send(req)

    def recv(self):
        """The next Response from the socket (any id), or None at a clean EOF."""
        data = read_frame(self.sock, self.cap)
        if data is None:
            return None
        resp = pb2().Response()
        try:
            resp.ParseFromString(data)
        except Exception as e:  # google.protobuf.message.DecodeError
            raise ProtocolError("response does not parse: %s" % e) from e
        self.server_version = resp.protocol_version
        return resp

    def responses(self, rid):
        """Yield the Responses to request rid, in order, up to and including
        its terminal one. Responses for other ids read meanwhile are kept for
        their own responses() call. A Response with id 0 (a connection error)
        is yielded to whoever is waiting. Raises ProtocolError on EOF first."""
        while True:
            held = self._held.get(rid)
            if held:
                resp = held.pop(0)
            else:
                resp = self.recv()
                if resp is None:
                    raise ProtocolError("connection closed before request %d finished" % rid)
                if resp.id not in (rid, 0):
                    self._held.setdefault(resp.id, []).append(resp)
                    continue
            yield resp
            if body_of(resp) in TERMINAL:
                return

    def call(self, kind, **fields):
        """Send a request and return the body of its terminal reply; an Error
        raises ServerError. For Generate, Pieces are dropped (see generate())."""
        rid = self.request(kind, **fields)
        last = None
        for last in self.responses(rid):
            pass
        which = body_of(last)
        if which == "error":
            raise ServerError(last.id, pb2().ErrorCode.Name(last.error.code), last.error.message)
        return getattr(last, which)

    def generate(self, prompt, **params):
        """Run a Generate to its end: (text, ids, Done). Raises ServerError on Error."""
        rid = self.request("generate", prompt=prompt, **params)
        text, ids = [], []
        for resp in self.responses(rid):
            which = body_of(resp)
            if which == "piece":
                text.append(resp.piece.text)
                ids.extend(resp.piece.ids)
            elif which == "done":
                return "".join(text), ids, resp.done
            elif which == "error":
                raise ServerError(resp.id, pb2().ErrorCode.Name(resp.error.code), resp.error.message)
        raise ProtocolError("request %d ended without Done" % rid)


def connect(path, timeout=None):
    """Connect to stratad's Unix socket at path; timeout in seconds (None: block)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return Connection(s)


def wait_ready(path, proc=None, timeout=30.0):
    """Wait until a stratad listening at path answers Status: True; False when proc (a
    Popen, may be None) exits first or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if os.path.exists(path):
            try:
                with connect(path, timeout=5) as c:
                    c.call("status")
                return True
            except OSError:
                pass
        time.sleep(0.1)
    return False


def request(conn, kind, **fields):
    """Module-level form of Connection.request."""
    return conn.request(kind, **fields)


def responses(conn, rid):
    """Module-level form of Connection.responses."""
    return conn.responses(rid)
