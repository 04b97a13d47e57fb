"""test-pyclient.py: self-check of tests/pyclient/strata_client.py (TAP).

Compiles strata.proto for Python, sends every request and reply type through
the framing over a socketpair, checks split and coalesced frames, the cap and
EOF rules, and that Connection.responses() sorts interleaved replies by id.
"""

import os
import shutil
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_client as sc  # noqa: E402

count = 0
failed = 0


def ok(cond, what):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", count, what), flush=True)
    return cond


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    return None


if not shutil.which(os.environ.get("PROTOC") or "protoc"):
    print("1..0 # SKIP protoc not found (install protobuf-compiler)")
    sys.exit(0)

p = sc.pb2()
ok(hasattr(p, "Request") and hasattr(p, "Response"), "strata.proto compiles and imports as strata_pb2")
ok(p.PROTOCOL_VERSION_1 == sc.PROTOCOL_VERSION, "ProtocolVersion.PROTOCOL_VERSION_1 matches the module's version")


def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a, b


def round_trip(msg, cls):
    a, b = pair()
    try:
        sc.write_frame(a, msg.SerializeToString())
        out = cls()
        out.ParseFromString(sc.read_frame(b))
        return out
    finally:
        a.close()
        b.close()


# ---- every message type through the framing ----
req = p.Request(id=9, protocol_version=1)
req.generate.prompt = "Érase una vez \u2014"
req.generate.max_tokens = 16
req.generate.temperature = 0.0
req.generate.seed = 2 ** 63
req.generate.add_bos = False
req.generate.stop.extend(["\n\n", "User:"])
out = round_trip(req, p.Request)
ok(out == req, "Request(Generate) round trip")
g = out.generate
ok(g.HasField("temperature") and g.temperature == 0.0 and not g.HasField("top_k")
   and g.HasField("add_bos") and not g.add_bos and g.WhichOneof("seed_opt") == "seed",
   "Generate: optional fields set to 0/False stay set, unset ones stay unset")

for kind, fields in [("tokenize", dict(text="hi <s>", add_bos=True, parse_special=True)),
                     ("detokenize", dict(ids=[1, 2, 255999], render_special=True)),
                     ("status", {}),
                     ("cancel", dict(target_id=9))]:
    r = p.Request(id=3, **{kind: getattr(p, kind.capitalize())(**fields)})
    out = round_trip(r, p.Request)
    ok(out == r and out.WhichOneof("body") == kind, "Request(%s) round trip" % kind.capitalize())

resps = [
    p.Response(id=1, protocol_version=1, piece=p.Piece(text="ni\u00f1o", ids=[5, 6])),
    p.Response(id=1, protocol_version=1, done=p.Done(
        finish_reason=p.FINISH_REASON_STOP_STRING, seed=7, stop_string="User:",
        timings=p.Timings(prompt_tokens=3, generated_tokens=2, time_to_first_token_ms=1.5,
                          prompt_tokens_per_s=2.0, generation_tokens_per_s=3.0, total_ms=4.25,
                          bytes_read=10 ** 12, read_mb_per_s=1999.5, stall_ms=0.125))),
    p.Response(id=2, tokenize=p.TokenizeReply(ids=[1, 2], pieces=[b"\xe2\x80", b"<s>"])),
    p.Response(id=3, detokenize=p.DetokenizeReply(text="a\ufffdb")),
    p.Response(id=4, status=p.StatusReply(
        daemon_version="0.1.0", protocol_version=1, io_mode=p.IO_MODE_STREAM,
        model=p.Model(name="ALIA-40b", n_layer=48, n_vocab=256000,
                      weight_types=[p.WeightType(type="q8_0", n_tensors=337, bytes=43 * 10 ** 9)]),
        memory=p.Memory(kv_cache_bytes=1 << 30), uptime_ms=5)),
    p.Response(id=5, cancel=p.CancelReply()),
    p.Response(id=0, error=p.Error(code=p.ERROR_CODE_FRAME_TOO_LARGE, message="too big")),
]
for r in resps:
    out = round_trip(r, p.Response)
    ok(out == r, "Response(%s) round trip" % sc.body_of(r))

# ---- framing edge cases ----
a, b = pair()
data = b"".join(sc.frame(r.SerializeToString()) for r in resps)


def dribble():
    for i in range(len(data)):
        a.sendall(data[i:i + 1])
    a.shutdown(socket.SHUT_WR)


t = threading.Thread(target=dribble)
t.start()
got = []
while True:
    body = sc.read_frame(b)
    if body is None:
        break
    got.append(body)
t.join()
ok(got == [r.SerializeToString() for r in resps], "frames written one byte at a time arrive whole, then a clean EOF")
a.close()
b.close()

a, b = pair()
a.sendall(data)  # all frames in one write
a.close()
n = 0
while sc.read_frame(b) is not None:
    n += 1
ok(n == len(resps), "%d frames in one write come out one by one" % len(resps))
b.close()

a, b = pair()
a.sendall(struct.pack(">I", 0))
ok(sc.read_frame(b) == b"" and p.Request.FromString(b"") == p.Request(),
   "a zero-length frame is an all-default message")
a.sendall(struct.pack(">I", 101))  # no body follows: the cap must decide from the prefix
e = raises(sc.FrameTooLarge, sc.read_frame, b, 100)
ok(e is not None and e.length == 101 and e.cap == 100, "a prefix above the cap raises FrameTooLarge before the body")
a.close()
b.close()

for cut, what in [(2, "inside the prefix"), (7, "inside the body")]:
    a, b = pair()
    a.sendall(sc.frame(b"0123456789")[:cut])
    a.close()
    ok(raises(sc.ProtocolError, sc.read_frame, b) is not None, "EOF %s raises ProtocolError" % what)
    b.close()

# ---- a Connection sorts interleaved replies by id ----
a, b = pair()
conn = sc.Connection(a)
rid1 = conn.request("generate", prompt="x", max_tokens=2, temperature=0.0)
rid2 = conn.request("status")
first = p.Request.FromString(sc.read_frame(b))
second = p.Request.FromString(sc.read_frame(b))
ok(first.id == rid1 and first.protocol_version == sc.PROTOCOL_VERSION and first.generate.HasField("temperature"),
   "the first request carries the protocol version and a fresh id")
ok(second.id == rid2 != rid1 and second.WhichOneof("body") == "status",
   "an empty body (Status) still selects the oneof")


def reply():
    for r in [p.Response(id=rid1, piece=p.Piece(text="a", ids=[1])),
              p.Response(id=rid2, status=p.StatusReply(daemon_version="x")),
              p.Response(id=rid1, piece=p.Piece(text="b", ids=[2])),
              p.Response(id=rid1, done=p.Done(finish_reason=p.FINISH_REASON_LENGTH))]:
        sc.write_frame(b, r.SerializeToString())
        time.sleep(0.01)


t = threading.Thread(target=reply)
t.start()
seq = [sc.body_of(r) for r in conn.responses(rid1)]
later = [sc.body_of(r) for r in conn.responses(rid2)]
t.join()
ok(seq == ["piece", "piece", "done"], "responses(id) yields that request's replies up to its terminal one")
ok(later == ["status"], "a reply to another id read meanwhile is kept for its own responses()")

rid3 = conn.request("cancel", target_id=77)
sc.read_frame(b)
sc.write_frame(b, p.Response(id=rid3, error=p.Error(code=p.ERROR_CODE_NOT_FOUND, message="no such request")).SerializeToString())
it = conn.responses(rid3)
last = list(it)[-1]
ok(sc.body_of(last) == "error" and last.error.code == p.ERROR_CODE_NOT_FOUND, "an Error is terminal")
rid4 = conn.request("status")
sc.read_frame(b)
b.close()
ok(raises(sc.ProtocolError, lambda: list(conn.responses(rid4))) is not None,
   "EOF before the terminal reply raises ProtocolError")
conn.close()

print("1..%d" % count)
sys.exit(1 if failed else 0)
