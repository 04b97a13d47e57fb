"""test-client-wire.py: the C client `strata` against Python on the server's
side of the socket (TAP).

Python here is not a stand-in for stratad: it plays back fixed replies to
check what the C client puts on the wire (every option mapped to its field,
the protocol version, ids), that Python-encoded replies decode in C, that
--json output is valid JSON whatever the text holds, the Ctrl-C -> Cancel ->
exit 130 sequence, and the documented exit codes. The daemon's own tests
drive `strata` against the real stratad.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_client as sc  # noqa: E402

count = 0
failed = 0


def ok(cond, what, diag=None):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", count, what), flush=True)
    if not cond and diag:
        for line in str(diag).splitlines():
            print("# " + line, flush=True)
    return cond


build = os.environ.get("STRATA_BUILDDIR", ".")
strata = os.path.join(build, "client", "strata")
if not os.access(strata, os.X_OK):
    print("1..0 # SKIP %s not built" % strata)
    sys.exit(0)

p = sc.pb2()
tmp = tempfile.mkdtemp(prefix="strata-wire-")
sock_path = os.path.join(tmp, "s.sock")


class Peer:
    """A listening socket; serve(handler) runs handler(conn_socket) in a thread."""

    def __init__(self):
        if os.path.exists(sock_path):
            os.unlink(sock_path)
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(sock_path)
        self.ls.listen(1)
        self.ls.settimeout(10)
        self.error = None

    def serve(self, handler):
        def run():
            try:
                s, _ = self.ls.accept()
                s.settimeout(10)
                try:
                    handler(s)
                finally:
                    s.close()
            except Exception as e:  # reported by the test that started it
                self.error = e
        self.th = threading.Thread(target=run)
        self.th.start()

    def join(self):
        self.th.join(15)
        self.ls.close()


def recv_req(s):
    data = sc.read_frame(s, sc.REQUEST_CAP_DEFAULT)
    return None if data is None else p.Request.FromString(data)


def send(s, **kw):
    kw.setdefault("protocol_version", 1)
    sc.write_frame(s, p.Response(**kw).SerializeToString())


def run(args, handler, stdin=b""):
    peer = Peer()
    peer.serve(handler)
    r = subprocess.run([strata, "--socket", sock_path] + args, input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    peer.join()
    return r, peer.error


# ---- status ----
seen = {}


def status_handler(s):
    seen["req"] = recv_req(s)
    send(s, id=seen["req"].id, status=p.StatusReply(
        daemon_version="0.1.0", protocol_version=1, io_mode=p.IO_MODE_STREAM, layers_resident=12,
        threads=2, requests_active=1, requests_queued=0, connections=1, uptime_ms=93784000,
        max_frame_bytes=1 << 20, generated_tokens_total=2 ** 40,
        model=p.Model(path="/m/alia.gguf", name="ALIA-40b", architecture="llama", n_layer=48,
                      n_embd=8192, n_head=64, n_head_kv=8, n_ff=24576, n_vocab=256000,
                      n_ctx_train=4096, n_ctx=2048, n_params=40_400_000_000, file_bytes=43 * 10 ** 9,
                      weight_types=[p.WeightType(type="q8_0", n_tensors=337, bytes=42 * 10 ** 9)]),
        memory=p.Memory(weights_resident_bytes=10 << 30, kv_cache_bytes=384 << 20, budget_bytes=16 << 30)))


r, err = run(["status", "--json"], status_handler)
req = seen["req"]
ok(err is None and req is not None and req.protocol_version == 1 and req.id != 0
   and req.WhichOneof("body") == "status", "status: the request carries protocol version 1, an id, a Status body",
   err)
try:
    js = json.loads(r.stdout)
except ValueError as e:
    js = None
    ok(False, "status --json is valid JSON", "%s\n%r" % (e, r.stdout))
if js is not None:
    ok(r.returncode == 0 and js["model"]["name"] == "ALIA-40b" and js["io_mode"] == "stream"
       and js["generated_tokens_total"] == 2 ** 40 and js["model"]["weight_types"][0]["type"] == "q8_0"
       and js["memory"]["budget_bytes"] == 16 << 30,
       "status --json: one JSON object with the reply's fields (enum by name, 64-bit exact)", r.stdout)

r, err = run(["status"], status_handler)
out = r.stdout.decode()
ok(r.returncode == 0 and "ALIA-40b (llama)" in out and "12 of 48 layers resident" in out
   and "up 1d 2h 3m" in out and "budget 16.0 GiB" in out,
   "status: a human-readable table", out + r.stderr.decode())

# ---- generate: options on the wire, text and JSON out ----
PIECES = ["Hello", ", \"world\"", "\n\ttab\\", "\u00f1\u2014\U0001F600", "", "\x01end"]


def gen_handler(s):
    seen["req"] = req = recv_req(s)
    for i, t in enumerate(PIECES):
        send(s, id=req.id, piece=p.Piece(text=t, ids=[100 + i]))
    send(s, id=req.id, done=p.Done(finish_reason=p.FINISH_REASON_EOS, seed=4242,
                                   timings=p.Timings(prompt_tokens=3, generated_tokens=7,
                                                     time_to_first_token_ms=120.5,
                                                     generation_tokens_per_s=9.25, total_ms=800)))


r, err = run(["generate", "-n", "5", "--temperature", "0", "--top-k", "40", "--min-p", "0.05",
              "--repeat-penalty", "1.1", "--repeat-last-n", "64", "--seed", "7", "--stop", "\n\n",
              "--stop", "User:", "--no-bos", "--special", "--json", "Say \u00f1"], gen_handler)
g = seen["req"].generate
ok(err is None and seen["req"].protocol_version == 1 and g.prompt == "Say \u00f1" and g.max_tokens == 5
   and g.HasField("temperature") and g.temperature == 0.0 and g.top_k == 40 and abs(g.min_p - 0.05) < 1e-7
   and abs(g.repetition_penalty - 1.1) < 1e-6 and g.repetition_window == 64 and g.seed == 7
   and list(g.stop) == ["\n\n", "User:"] and g.HasField("add_bos") and not g.add_bos and g.parse_special,
   "generate: every option lands in its Generate field", str(g) + str(err))
ok(not g.HasField("top_p"), "generate: an option not given stays unset (server default)")
lines = r.stdout.decode().splitlines()
try:
    objs = [json.loads(x) for x in lines]
except ValueError as e:
    objs = []
    ok(False, "generate --json: every line is valid JSON", "%s\n%r" % (e, r.stdout))
if objs:
    pieces = [o for o in objs if o["type"] == "piece"]
    ok(r.returncode == 0 and "".join(o["text"] for o in pieces) == "".join(PIECES)
       and [o["ids"] for o in pieces] == [[100 + i] for i in range(len(PIECES))],
       "generate --json: one object per piece; quotes, controls, tabs and emoji survive escaping", lines)
    d = objs[-1]
    ok(d["type"] == "done" and d["finish_reason"] == "eos" and d["seed"] == 4242
       and d["timings"]["generated_tokens"] == 7 and d["timings"]["time_to_first_token_ms"] == 120.5,
       "generate --json: a final done object with finish reason, seed and timings", d)

r, err = run(["generate", "--verbose", "-"], gen_handler, stdin="from stdin \u00e9\n".encode())
ok(seen["req"].generate.prompt == "from stdin \u00e9\n" and not seen["req"].generate.HasField("temperature")
   and not seen["req"].generate.HasField("add_bos"),
   "generate -: the prompt comes from stdin, unchanged; no options means nothing set")
ok(r.returncode == 0 and r.stdout.decode() == "".join(PIECES),
   "generate: the text is written exactly (no newline added off a terminal)", r.stdout)
ok("7 tokens" in r.stderr.decode() and "finish eos" in r.stderr.decode() and "seed 4242" in r.stderr.decode(),
   "generate --verbose: a summary line on stderr", r.stderr)

# ---- errors and exit codes ----


def reply_error(code, msg, rid=None):
    def h(s):
        req = recv_req(s)
        send(s, id=req.id if rid is None else rid, error=p.Error(code=code, message=msg))
    return h


r, _ = run(["generate", "x"], reply_error(p.ERROR_CODE_PROMPT_TOO_LONG, "prompt has 5000 tokens, context 4096"))
ok(r.returncode == 5 and b"PROMPT_TOO_LONG" in r.stderr and b"context 4096" in r.stderr,
   "an Error reply exits 5 and names the code and the message", r.stderr)
r, _ = run(["generate", "--json", "x"], reply_error(p.ERROR_CODE_OVERLOADED, "queue full"))
ok(r.returncode == 5 and json.loads(r.stdout)["code"] == "overloaded",
   "generate --json: an Error is also a JSON object on stdout", r.stdout)
r, _ = run(["status"], reply_error(p.ERROR_CODE_BAD_VERSION, "client speaks 1, server speaks 2"))
ok(r.returncode == 4 and b"BAD_VERSION" in r.stderr, "BAD_VERSION exits 4 (protocol error)", r.stderr)
r, _ = run(["status"], reply_error(p.ERROR_CODE_MALFORMED, "bad frame", rid=0))
ok(r.returncode == 4 and b"MALFORMED" in r.stderr, "a connection error (id 0) is reported too", r.stderr)
r, _ = run(["tokenize", "x"], lambda s: recv_req(s))
ok(r.returncode == 3 and b"closed the connection" in r.stderr, "the server hanging up exits 3", r.stderr)


def garbage(s):
    recv_req(s)
    sc.write_frame(s, b"\x08\x80")  # a truncated varint


r, _ = run(["status"], garbage)
ok(r.returncode == 4 and b"protocol error" in r.stderr, "bytes that are not a Response exit 4", r.stderr)


def bad_utf8(s):
    req = recv_req(s)
    # Hand-built: Response{id, detokenize{text: "\xff"}}; Python would refuse to encode it.
    body = p.Response(id=req.id).SerializeToString() + b"\x6a\x03\x0a\x01\xff"
    sc.write_frame(s, body)


r, _ = run(["detokenize", "1"], bad_utf8)
ok(r.returncode == 4 and b"UTF-8" in r.stderr, "a reply string that is not UTF-8 is a protocol error", r.stderr)


def done_error(s):
    req = recv_req(s)
    send(s, id=req.id, piece=p.Piece(text="par", ids=[1]))
    send(s, id=req.id, done=p.Done(finish_reason=p.FINISH_REASON_ERROR,
                                   error=p.Error(code=p.ERROR_CODE_IO_ERROR, message="read /m.gguf: EIO")))


r, _ = run(["generate", "x"], done_error)
ok(r.returncode == 5 and r.stdout == b"par" and b"IO_ERROR" in r.stderr,
   "a generation that ends with an error keeps its text and exits 5", r.stderr)
r = subprocess.run([strata, "--socket", os.path.join(tmp, "nobody.sock"), "status"],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
ok(r.returncode == 3 and b"nobody.sock" in r.stderr, "no server exits 3 and names the socket", r.stderr)
r = subprocess.run([strata, "generate", "--top-p", "abc", "x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ok(r.returncode == 2 and b"--top-p" in r.stderr, "a bad option value exits 2 and names the option", r.stderr)
r = subprocess.run([strata, "generate", "-"], input=b"caf\xe9", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
ok(r.returncode == 2 and b"UTF-8" in r.stderr, "a prompt that is not UTF-8 exits 2 before connecting", r.stderr)

# ---- tokenize / detokenize ----


def tok_handler(s):
    seen["req"] = req = recv_req(s)
    send(s, id=req.id, tokenize=p.TokenizeReply(ids=[1, 15043, 3186], pieces=[b"<s>", b"Hello", b" world"]))


r, _ = run(["tokenize", "Hello world"], tok_handler)
t = seen["req"].tokenize
ok(r.stdout == b"1 15043 3186\n" and t.text == "Hello world" and t.HasField("add_bos") and not t.add_bos
   and not t.parse_special, "tokenize: ids space-separated; BOS explicitly off by default", r.stdout)
r, _ = run(["tokenize", "--bos", "--special", "Hi"], tok_handler)
ok(seen["req"].tokenize.add_bos and seen["req"].tokenize.parse_special, "tokenize --bos --special set their fields")


def detok_handler(s):
    seen["req"] = req = recv_req(s)
    send(s, id=req.id, detokenize=p.DetokenizeReply(text="Hello world"))


r, _ = run(["detokenize", "--special", "1", "15043", "3186"], detok_handler)
ok(r.stdout == b"Hello world" and list(seen["req"].detokenize.ids) == [1, 15043, 3186]
   and seen["req"].detokenize.render_special, "detokenize: ids in, text out", r.stdout)

# ---- Ctrl-C ----


def run_interrupted(handler, second):
    peer = Peer()
    peer.serve(handler)
    proc = subprocess.Popen([strata, "--socket", sock_path, "generate", "--json", "go"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()  # the first piece is out: the request is running
    proc.send_signal(signal.SIGINT)
    if second:
        seen["cancel_seen"].wait(10)
        proc.send_signal(signal.SIGINT)
    rest, errout = proc.communicate(timeout=20)
    peer.join()
    return proc.returncode, first + rest, errout, peer.error


def cancel_handler(s):
    req = recv_req(s)
    send(s, id=req.id, piece=p.Piece(text="once", ids=[9]))
    c = recv_req(s)
    seen["cancel"] = c
    send(s, id=c.id, cancel=p.CancelReply())
    send(s, id=req.id, done=p.Done(finish_reason=p.FINISH_REASON_CANCELLED, timings=p.Timings(generated_tokens=1)))


rc, out, errout, err = run_interrupted(cancel_handler, False)
c = seen.get("cancel")
ok(err is None and c is not None and c.WhichOneof("body") == "cancel" and c.cancel.target_id != 0
   and c.id != c.cancel.target_id, "Ctrl-C sends a Cancel naming the generation's id", err)
lines = out.decode().splitlines()
ok(rc == 130 and len(lines) == 2 and json.loads(lines[1])["finish_reason"] == "cancelled",
   "... waits for the Done (cancelled) and exits 130", (rc, out, errout))

seen["cancel_seen"] = threading.Event()


def deaf_handler(s):
    recv_req(s)
    send(s, id=1, piece=p.Piece(text="once", ids=[9]))
    recv_req(s)
    seen["cancel_seen"].set()
    recv_req(s)  # never answers; returns at EOF when the client is gone


rc, out, errout, err = run_interrupted(deaf_handler, True)
ok(rc == 130, "a second Ctrl-C exits 130 at once, without waiting for the server", (rc, errout))

# ---- help and version ----
r = subprocess.run([strata, "--help"], stdout=subprocess.PIPE)
ok(r.returncode == 0 and b"Exit status" in r.stdout and b"generate" in r.stdout, "--help exits 0 and documents exit codes")
r = subprocess.run([strata, "--version"], stdout=subprocess.PIPE)
ok(r.returncode == 0 and b"protocol 1" in r.stdout, "--version names the protocol version")

print("1..%d" % count)
sys.exit(1 if failed else 0)
