#!/usr/bin/env python3
"""score-passes.py: what a multiple-choice question costs when the weights stream.

    bench/score-passes.py --stratad BUILD/daemon/stratad --model M.gguf [--budget 2G]
                          [--choices 4] [--repeat 3] [--drop]

Starts stratad with the model streamed (--memory-budget below its size) and asks one
question of N choices two ways, one after the other, --repeat times:
  score: one Score request (the context once, every continuation in the same pass);
  echo:  N Generate requests with echo_logprobs and max_tokens 1, one by one (what a client
         scoring each choice separately pays: lm-evaluation-harness without batching).
For each it prints the forward passes stratad counted (StatusReply.passes_total before and
after), the weight bytes it read (bytes_read_total) and the wall time, and the ratios
echo/score. The two must give the same log-probabilities: checked, within 1e-3 a token
(an F32 model's products go through OpenBLAS, whose sums depend on how many rows a call
has, so a continuation scored beside three others differs from it alone in the last
digits: 3e-5 to 1.1e-4 a token on stories260K, where a repeat also reuses the cached
context and computes fewer rows; the quantized kernels are batch-invariant). --drop
empties the page cache before each (root). Measures; asserts only that equality. Not run
by make check; bench/README.md records its figures.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "pyclient"))
import strata_client as sc  # noqa: E402

CONTEXT = ("Question: Which city is the capital of Catalonia, in the north-east of the "
           "Iberian peninsula, on the Mediterranean coast?\nAnswer:")
CHOICES = [" Barcelona", " Girona", " Tarragona", " Lleida", " Valencia", " Madrid", " Bilbao",
           " Zaragoza"]


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def counters(c):
    st = c.call("status")
    return st.passes_total, st.bytes_read_total, time.monotonic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stratad", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--budget", default="2G")
    ap.add_argument("--choices", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--threads", default="2")
    a = ap.parse_args()
    choices = CHOICES[:a.choices]

    tmp = tempfile.mkdtemp(prefix="strata-score-")
    sock = os.path.join(tmp, "s.sock")
    log = open(os.path.join(tmp, "stratad.log"), "w")
    d = subprocess.Popen([a.stratad, "--model", a.model, "--socket", sock, "--memory-budget", a.budget,
                          "--threads", a.threads, "--parallel", str(max(4, a.choices)),
                          "--config", "/dev/null"], stderr=log)
    try:
        if not sc.wait_ready(sock, d, timeout=300):
            with open(os.path.join(tmp, "stratad.log")) as f:
                sys.stderr.write(f.read())
            print("stratad was not ready (exit status %s)" % d.poll())
            return 1
        c = sc.connect(sock, timeout=3600)
        st = c.call("status")
        print("model %s: %d layers, %.2f GB of weights streamed per pass, io mode %d" %
              (os.path.basename(a.model), st.model.n_layer, st.bytes_streamed_per_pass / 1e9, st.io_mode))
        rows = []
        for r in range(a.repeat):
            if a.drop:
                drop_caches()
            p0, b0, t0 = counters(c)
            scr = c.call("score", context=CONTEXT, continuations=choices)
            p1, b1, t1 = counters(c)
            if a.drop:
                drop_caches()
            sums = []
            for ch in choices:
                whole = c.call("tokenize", text=CONTEXT + ch).ids
                _, _, done = c.generate("", prompt_ids=list(whole), max_tokens=1, temperature=0.0,
                                        echo_logprobs=True)
                tail = done.prompt_logprobs[scr.context_tokens:]
                sums.append(sum(t.logprob for t in tail))
            p2, b2, t2 = counters(c)
            worst = max(abs(s.logprob - e) / max(1, s.token_count) for s, e in zip(scr.scores, sums))
            rows.append((p1 - p0, b1 - b0, t1 - t0, p2 - p1, b2 - b1, t2 - t1, worst))
            print("run %d: score %d passes, %.2f GB, %.1f s | %d echo requests %d passes, %.2f GB, "
                  "%.1f s | passes x%.1f, bytes x%.1f, time x%.1f | logprobs agree within %.1e a token" %
                  (r + 1, p1 - p0, (b1 - b0) / 1e9, t1 - t0, len(choices), p2 - p1, (b2 - b1) / 1e9,
                   t2 - t1, (p2 - p1) / max(1, p1 - p0), (b2 - b1) / max(1, b1 - b0),
                   (t2 - t1) / max(1e-9, t1 - t0), worst))
            if worst > 1e-3:
                print("MISMATCH: the score and the echo runs disagree by %.3g a token" % worst)
                return 1
        best = max(range(len(choices)), key=lambda i: scr.scores[i].logprob)
        print("best choice:%s (the model's weights may be random: the choice means nothing there)" %
              choices[best])
        c.close()
    finally:
        d.terminate()
        d.wait(timeout=120)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
