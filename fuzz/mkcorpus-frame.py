"""mkcorpus-frame.py: writes the seed corpus of fuzz/fuzz-frame.c into
fuzz/corpus/frame/ (run from anywhere with the python3 that has
google.protobuf: /usr/bin/python3 fuzz/mkcorpus-frame.py).

Each seed is one control byte (bits 0-2: reader cap 16 << n bytes; bits 3-5:
largest split 1 << n bytes) followed by a client's byte stream.
"""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "pyclient"))
import strata_client as sc  # noqa: E402

p = sc.pb2(os.path.join(here, "..", "proto", "strata.proto"))
out = os.path.join(here, "corpus", "frame")
os.makedirs(out, exist_ok=True)


def ctl(cap_log, split_log):
    return bytes([(cap_log & 7) | (split_log & 7) << 3])


def fr(msg):
    return sc.frame(msg.SerializeToString())


gen = p.Request(id=1, protocol_version=1, generate=p.Generate(
    prompt="Once upon a time", max_tokens=32, temperature=0.0, top_k=40, top_p=0.95, min_p=0.05,
    repetition_penalty=1.1, repetition_window=64, seed=7, stop=["\n\n", "User:"], add_bos=True,
    parse_special=True))
seeds = {
    "generate": ctl(7, 7) + fr(gen),
    "generate-1byte-splits": ctl(7, 0) + fr(gen),
    "tokenize": ctl(7, 3) + fr(p.Request(id=2, protocol_version=1, tokenize=p.Tokenize(text="h\u00e9llo", add_bos=False))),
    "detokenize": ctl(7, 2) + fr(p.Request(id=3, detokenize=p.Detokenize(ids=[1, 2, 255999], render_special=True))),
    "status-cancel": ctl(6, 4) + fr(p.Request(id=4, status=p.Status())) + fr(p.Request(id=5, cancel=p.Cancel(target_id=1))),
    "pipeline": ctl(7, 5) + b"".join(fr(p.Request(id=i, status=p.Status())) for i in range(1, 9)),
    "empty-frame": ctl(0, 0) + struct.pack(">I", 0) + fr(p.Request(id=6, status=p.Status())),
    "too-large": ctl(0, 1) + struct.pack(">I", 17) + b"x" * 17,
    "huge-prefix": ctl(7, 2) + b"\xff\xff\xff\xff",
    "eof-in-prefix": ctl(7, 1) + b"\x00\x00",
    "eof-in-body": ctl(7, 3) + fr(gen)[:20],
    "malformed": ctl(7, 2) + sc.frame(b"\x08\x80") + sc.frame(b"\x52\x05\x0a"),
    "bad-utf8": ctl(7, 3) + sc.frame(p.Request(id=7).SerializeToString() + b"\x52\x04\x0a\x02\xc3\x28"),
    # NUL inside strings: the wire check must see the whole length, not a C string
    "nul-in-prompt": ctl(7, 3) + fr(p.Request(id=9, protocol_version=1, generate=p.Generate(prompt="Hi\0 there"))),
    "nul-first": ctl(7, 2) + fr(p.Request(id=10, protocol_version=1, tokenize=p.Tokenize(text="\0Once"))),
    "bad-utf8-after-nul": ctl(7, 3) + sc.frame(p.Request(id=11).SerializeToString() + b"\x5a\x07\x0a\x05ok\x00\xff\xfe"),
    "nul-in-stop": ctl(7, 4) + fr(p.Request(id=12, generate=p.Generate(prompt="go", stop=["\n", "Us\0er"]))),
    # a singular sub-message twice (protobuf merges, protobuf-c replaces), and
    # two different oneof members (the last wins everywhere)
    "generate-twice": ctl(7, 3) + sc.frame(p.Request(id=13, protocol_version=1, generate=p.Generate(prompt="Once")).SerializeToString()
                                           + p.Request(generate=p.Generate(max_tokens=4, temperature=0.5)).SerializeToString()),
    "two-oneof-members": ctl(7, 3) + sc.frame(p.Request(id=14, generate=p.Generate(prompt="a")).SerializeToString()
                                              + p.Request(status=p.Status()).SerializeToString()),
    "unknown-fields": ctl(7, 3) + sc.frame(p.Request(id=8, status=p.Status()).SerializeToString()
                                           + b"\x18\x09\x9a\x06\x03xyz\xa5\x01\xab\xab\xab\xab"),
}
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), out))
