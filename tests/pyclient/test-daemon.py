"""test-daemon.py: the real stratad driven from Python (python3-protobuf and the
.proto compiled by protoc at test time), proving the API is not tied to C:
status, tokenize/detokenize round trip, a greedy generation equal to
strata-model's, stop strings, cancel, log-probabilities, echo, prompt ids,
chat, Score, and errors. TAP on stdout."""

import math

import os
import shutil
import subprocess
import sys
import tempfile

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
        sc.wait_ready(sock, d)
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

        # log-probabilities: one per id; greedy tokens are their own top alternative
        rid = c.request("generate", prompt=text, max_tokens=8, temperature=0.0, top_logprobs=3)
        lps, gids = [], []
        for r in c.responses(rid):
            if sc.body_of(r) == "piece":
                lps.extend(r.piece.logprobs)
                gids.extend(r.piece.ids)
        ok(len(lps) == len(gids) == 8 and all(lp.id == i for lp, i in zip(lps, gids)),
           "top_logprobs: a TokenLogprob for each of the 8 ids")
        ok(all(lp.HasField("logprob") and lp.logprob <= 0 and len(lp.top) == 3 and lp.top[0].id == lp.id
               and abs(lp.top[0].logprob - lp.logprob) < 1e-6 and len(lp.bytes) >= 0 for lp in lps),
           "... each <= 0, with 3 alternatives, the greedy token first")

        # echo: the prompt's own log-probabilities; the first has none
        _, _, de = c.generate(text, max_tokens=1, temperature=0.0, echo_logprobs=True)
        ptoks = c.call("tokenize", text=text).ids
        ok(len(de.prompt_logprobs) == len(ptoks) and not de.prompt_logprobs[0].HasField("logprob")
           and all(p.HasField("logprob") and p.logprob <= 0 for p in de.prompt_logprobs[1:])
           and [p.id for p in de.prompt_logprobs] == list(ptoks),
           "echo_logprobs: Done carries the %d prompt tokens, the first without a logprob" % len(ptoks))

        # the same prompt as ids gives the same tokens
        _, ids2, _ = c.generate("", prompt_ids=list(ptoks), max_tokens=32, temperature=0.0)
        ok(ids2 == ids, "prompt_ids gives the text prompt's tokens")

        # chat: a template by name (this model has none of its own)
        msgs = [sc.pb2().ChatMessage(role="user", content="Hi")]
        out3, ids3, d3 = c.generate("", messages=msgs, chat_template="chatml", max_tokens=4, temperature=0.0)
        ok(d3.timings.prompt_tokens > 0 and len(ids3) >= 1, "a chat request renders with chatml and generates")
        try:
            c.generate("", messages=msgs, chat_template="nosuch", max_tokens=4)
            ok(False, "an unknown template is refused")
        except sc.ServerError as e:
            ok(e.code == "ERROR_CODE_INVALID_ARGUMENT" and "chatml" in e.message and "llama3" in e.message,
               "an unknown template is refused, naming the families: %s" % e.message[:80])

        # Score: four continuations in one pass, each equal to an echo run
        context, conts = "Once upon a time there was a", [" little girl", " dog", " big house", " cat"]
        scr = c.call("score", context=context, continuations=conts, token_logprobs=True)
        same = True
        for cont, s_ in zip(conts, scr.scores):
            whole = c.call("tokenize", text=context + cont).ids
            _, _, dd = c.generate("", prompt_ids=list(whole), max_tokens=1, temperature=0.0, echo_logprobs=True)
            tail = dd.prompt_logprobs[scr.context_tokens:]
            same &= len(tail) == s_.token_count and abs(sum(p.logprob for p in tail) - s_.logprob) < 1e-4
        ok(len(scr.scores) == 4 and scr.passes == 1 and scr.context_tokens > 0,
           "Score: 4 continuations, %d context tokens, in %d pass" % (scr.context_tokens, scr.passes))
        ok(same, "Score: each continuation's logprob equals an echo run of context + continuation")
        ok(all(len(s_.tokens) == s_.token_count and math.isclose(sum(t.logprob for t in s_.tokens), s_.logprob,
                                                                  abs_tol=1e-4) for s_ in scr.scores),
           "Score: token_logprobs add up to each continuation's sum")

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
