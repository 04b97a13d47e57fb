"""test-daemon.py: the real stratad driven from Python (python3-protobuf and the
.proto compiled by protoc at test time), proving the API is not tied to C:
status, tokenize/detokenize round trip, a greedy generation equal to
strata-model's, stop strings, cancel, and errors. TAP on stdout."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import strata_client as sc  # noqa: E402

n = 0
failed = 0


def ok(cond, desc):
    global n, failed
    n += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", n, desc), flush=True)
    return cond


def main():
    build = os.environ.get("STRATA_BUILDDIR", ".")
    shared = os.environ.get("STRATA_SHARED", "")
    tmp = tempfile.mkdtemp(prefix="strata-py-")
    stratad = os.path.join(build, "daemon", "stratad")
    tool = os.path.join(build, "tools", "strata-model")
    model = os.path.join(shared, "models", "stories260K.gguf")
    if not (shared and os.path.exists(model)):
        model = os.path.join(tmp, "synth.gguf")
        subprocess.run([tool, "synth", model, "--n-embd", "64", "--n-layer", "2", "--n-head", "4",
                        "--n-head-kv", "2", "--n-ff", "128", "--type", "f32", "--vocab", "builtin",
                        "--ctx", "512"], check=True)
    sock = os.path.join(tmp, "s.sock")
    log = open(os.path.join(tmp, "stratad.log"), "w")
    d = subprocess.Popen([stratad, "--model", model, "--socket", sock, "--ctx-size", "512",
                          "--kv-type", "f32", "--threads", "2", "--config", "/dev/null"],
                         stderr=log)
    try:
        for _ in range(300):
            if os.path.exists(sock):
                try:
                    with sc.connect(sock, timeout=5) as c:
                        c.call("status")
                    break
                except OSError:
                    pass
            time.sleep(0.1)
        c = sc.connect(sock, timeout=60)
        st = c.call("status")
        ok(st.model.n_layer > 0 and st.model.n_ctx == 512 and st.protocol_version == 1,
           "status from Python: %d layers, context %d" % (st.model.n_layer, st.model.n_ctx))

        text = "Once upon a time"
        tok = c.call("tokenize", text=text, add_bos=False)
        ok(len(tok.ids) > 0 and len(tok.pieces) == len(tok.ids), "tokenize: %s" % list(tok.ids))
        detok = c.call("detokenize", ids=list(tok.ids))
        ok(detok.text.strip() == text, "detokenize gives the text back: %r" % detok.text)

        out, ids, done = c.generate(text, max_tokens=32, temperature=0.0)
        ref = subprocess.run([tool, "generate", model, "--prompt", text, "-n", "32", "--temperature", "0",
                              "--kv-type", "f32", "--threads", "2"], capture_output=True, text=True,
                             check=True).stdout
        ok(done.finish_reason == sc.pb2().FINISH_REASON_LENGTH and len(ids) == 32,
           "a greedy generation streams 32 tokens and ends with LENGTH")
        ok(out == ref.rstrip("\n"), "the text equals strata-model's: %r" % out[:60])
        ok(done.timings.generated_tokens == 32 and done.timings.time_to_first_token_ms > 0,
           "Done carries timings (ttft %.2f ms, %.0f tok/s)" % (done.timings.time_to_first_token_ms,
                                                            done.timings.generation_tokens_per_s))

        words = out.split()
        if len(words) >= 3:
            stop = words[2]
            out2, _, done2 = c.generate(text, max_tokens=32, temperature=0.0, stop=[stop])
            ok(done2.finish_reason == sc.pb2().FINISH_REASON_STOP_STRING and done2.stop_string == stop
               and stop not in out2 and out.startswith(out2),
               "a stop string ends the text before it (%r)" % stop)
        else:
            ok(False, "the generation has at least three words")

        rid = c.request("generate", prompt=text, max_tokens=400, temperature=1.0, ignore_eos=True)
        first = next(c.responses(rid))
        crid = c.request("cancel", target_id=rid)
        kinds = [sc.body_of(r) for r in c.responses(crid)]
        reasons = [r.done.finish_reason for r in c.responses(rid) if sc.body_of(r) == "done"]
        ok(sc.body_of(first) == "piece" and "cancel" in kinds and reasons == [sc.pb2().FINISH_REASON_CANCELLED],
           "cancel from Python ends the stream with CANCELLED")

        try:
            c.generate(text, max_tokens=4, top_p=1.5)
            ok(False, "top_p 1.5 is refused")
        except sc.ServerError as e:
            ok(e.code == "ERROR_CODE_INVALID_ARGUMENT" and "top-p" in e.message,
               "top_p 1.5 is refused: %s" % e.message)
        c.close()

        bad = sc.connect(sock, timeout=30)
        req = sc.pb2().Request(id=1, protocol_version=7)
        req.status.SetInParent()
        bad.send(req)
        resp = bad.recv()
        ok(resp is not None and sc.body_of(resp) == "error" and resp.error.code == sc.pb2().ERROR_CODE_BAD_VERSION
           and "7" in resp.error.message, "version 7 gets BAD_VERSION naming it")
        ok(bad.recv() is None, "... and the connection is closed")
        bad.close()
    finally:
        d.terminate()
        rc = d.wait(timeout=30)
        ok(rc == 0, "stratad exits 0 on SIGTERM")
        log.close()
        if failed:
            with open(os.path.join(tmp, "stratad.log")) as f:
                for line in f:
                    print("# stratad: " + line.rstrip())
        shutil.rmtree(tmp, ignore_errors=True)
    print("1..%d" % n)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
