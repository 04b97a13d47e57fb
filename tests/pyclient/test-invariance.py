"""test-invariance.py: batch invariance at the daemon. A greedy request runs
alone, then again while prompts of every length 1..200 (token ids) are sent
beside it, one after another, and once more among 15 other requests; its
tokens and their log-probabilities must be the same, float for float, every
time. Run on synthesized Q8_0, Q4_0 and Q4_K_M (Q4_K and Q6_K) models, the
types with multi-row kernels (kernels/qgemm.h). Before those kernels a prompt
of 64 tokens or more switched the pass to dequantize + sgemm and the running
request's output changed. TAP on stdout.

An injected prompt counts only when it ran wholly beside the request: the
request had not finished before it was sent nor when its reply came. The
request is started again (the same prompt) until every length has run so."""

import os
import random
import select
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_client as sc  # noqa: E402

N_GEN = 400          # tokens of the running request
MAX_INJECT = 200     # injected prompt lengths 1..MAX_INJECT

n = 0
failed = 0


def ok(cond, desc):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, desc), flush=True)
    return cond


def diag(msg):
    print("# " + msg, flush=True)


class Stream:
    """A Generate's replies, read as they come without blocking the test."""

    def __init__(self, conn, rid):
        self.conn, self.rid = conn, rid
        self.ids, self.logprobs, self.done, self.error = [], [], None, None

    def take(self, resp):
        which = sc.body_of(resp)
        if which == "piece":
            self.ids.extend(resp.piece.ids)
            self.logprobs.extend(lp.logprob for lp in resp.piece.logprobs)
        elif which == "done":
            self.done = resp.done
        elif which == "error":
            self.error = resp.error.message

    def finished(self):
        return self.done is not None or self.error is not None

    def poll(self):
        """Read every reply already waiting; True when the request has ended."""
        while not self.finished() and select.select([self.conn.sock], [], [], 0)[0]:
            self.take(self.conn.recv())
        return self.finished()

    def wait(self, n_ids=None):
        """Block until the end (or until n_ids tokens arrived)."""
        if self.finished():
            return
        for resp in self.conn.responses(self.rid):
            self.take(resp)
            if n_ids is not None and len(self.ids) >= n_ids:
                return


def start(conn, **params):
    return Stream(conn, conn.request("generate", **params))


def run_model(stratad, tool, tmp, wtype):
    model = os.path.join(tmp, "synth-%s.gguf" % wtype)
    # 256 wide: whole super-blocks for the K-quant mixture
    subprocess.run([tool, "synth", model, "--n-embd", "256", "--n-layer", "2", "--n-head", "4",
                    "--n-head-kv", "2", "--n-ff", "512", "--type", wtype, "--vocab", "builtin",
                    "--ctx", "1024", "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
    sock = os.path.join(tmp, "%s.sock" % wtype)
    log_path = os.path.join(tmp, "stratad-%s.log" % wtype)
    failed_before = failed
    log = open(log_path, "w")
    d = subprocess.Popen([stratad, "--model", model, "--socket", sock, "--ctx-size", "512",
                          "--parallel", "16", "--threads", "2", "--config", "/dev/null"], stderr=log)
    try:
        sc.wait_ready(sock, d)
        run_checks(sock, wtype)
    finally:
        d.terminate()
        d.wait()
        log.close()
    if failed > failed_before:
        with open(log_path) as f:
            for line in f.readlines()[-10:]:
                diag("stratad: " + line.rstrip())


def run_checks(sock, wtype):
    req = dict(prompt="Once upon a time", max_tokens=N_GEN, temperature=0.0, ignore_eos=True,
               top_logprobs=1)
    a_conn = sc.connect(sock, timeout=120)
    b_conn = sc.connect(sock, timeout=120)
    solo = start(a_conn, **req)
    solo.wait()
    if not ok(solo.done is not None and len(solo.ids) == N_GEN and len(solo.logprobs) == N_GEN,
              "%s: the request alone: %d tokens with log-probabilities" % (wtype, len(solo.ids))):
        return

    rng = random.Random(11)
    todo = list(range(1, MAX_INJECT + 1))
    runs, same, t0 = 0, 0, time.time()
    while todo and runs < 20:
        runs += 1
        a = start(a_conn, **req)
        a.wait(n_ids=2)  # it is running
        while todo and not a.poll():
            length = todo[0]
            ids = [rng.randrange(3, 512) for _ in range(length)]
            b = start(b_conn, prompt_ids=ids, max_tokens=2, temperature=0.0, ignore_eos=True)
            b.wait()
            if b.error is not None:
                ok(False, "%s: an injected prompt of %d tokens failed: %s" % (wtype, length, b.error))
                return
            if not a.poll():  # it ran wholly beside the request
                todo.pop(0)
        a.wait()
        if a.ids == solo.ids and a.logprobs == solo.logprobs:
            same += 1
        else:
            k = next((i for i in range(min(len(a.ids), N_GEN))
                      if a.ids[i] != solo.ids[i] or a.logprobs[i] != solo.logprobs[i]), None)
            diag("%s run %d: first difference at token %s" % (wtype, runs, k))
    ok(not todo, "%s: prompts of every length 1..%d ran beside the request (%d runs, %.1f s)"
       % (wtype, MAX_INJECT, runs, time.time() - t0))
    ok(same == runs, "%s: %d of %d runs gave the same %d tokens and log-probabilities as the "
       "request alone" % (wtype, same, runs, N_GEN))

    # 16 at once: the request and 15 others (prompts of 1..57 tokens) started together
    others = []
    a = start(a_conn, **req)
    for i in range(15):
        c = sc.connect(sock, timeout=120)
        ids = [rng.randrange(3, 512) for _ in range(1 + 4 * i)]
        others.append((c, start(c, prompt_ids=ids, max_tokens=N_GEN // 2, temperature=0.0,
                                ignore_eos=True)))
    a.wait()
    done = 0
    for c, o in others:
        o.wait()
        done += o.done is not None and len(o.ids) == N_GEN // 2
        c.close()
    ok(done == 15 and a.ids == solo.ids and a.logprobs == solo.logprobs,
       "%s: with 15 other requests at once (%d finished), the same tokens and log-probabilities "
       "as alone" % (wtype, done))


def main():
    build = os.environ.get("STRATA_BUILDDIR", ".")
    tmp = tempfile.mkdtemp(prefix="strata-inv-")
    stratad = os.path.join(build, "daemon", "stratad")
    tool = os.path.join(build, "tools", "strata-model")
    try:
        for wtype in ("q8_0", "q4_0", "Q4_K_M"):
            run_model(stratad, tool, tmp, wtype)
    finally:
        subprocess.run(["rm", "-rf", tmp])
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
