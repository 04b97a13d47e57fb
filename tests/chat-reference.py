#!/usr/bin/env python3
"""chat-reference.py: proves tokenizer/chat.c renders conversations byte for
byte as the real Jinja templates do. Renders each tests/chat-templates/*.jinja
with jinja2 set up as Hugging Face's apply_chat_template sets it up, and the
same conversation with tests/chat-render (the C renderer), and compares.
Also checks that chat_detect gives each template the family listed below.
Not a test of jinja2, nor of the templates: where strata chooses to differ
(chat.h lists where), the case says so and is skipped, never silently passed.
Prints TAP; skips (1..0) when jinja2 (Debian: python3-jinja2) is missing."""

import os
import subprocess
import sys

try:
    import jinja2
    import jinja2.ext
    import jinja2.sandbox
except ImportError:
    print("1..0 # SKIP python3-jinja2 is not installed")
    sys.exit(0)

SRCDIR = os.environ.get("STRATA_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDDIR = os.environ.get("STRATA_BUILDDIR") or SRCDIR
DRIVER = os.path.join(BUILDDIR, "tests", "chat-render")
TEMPLATES = os.path.join(SRCDIR, "tests", "chat-templates")

DEEPSEEK_CODER_PREAMBLE = (
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by "
    "Deepseek Company, and you only answer questions related to computer science. For "
    "politically sensitive questions, security and privacy issues, and other non-computer "
    "science questions, you will refuse to answer\n")

# (template file, family chat_detect must give, bos_token, eos_token, notes)
# notes:
#   default_system  the system message the template writes when the conversation
#                   has none; strata writes none, so the C side gets it passed
#                   explicitly and must then give the template's exact text
#   folds_system    the template raises on a system message; strata joins it to
#                   the first user message instead (nothing to compare with)
#   lenient         the template raises unless user/assistant alternate; the
#                   family does not check (generic chatml takes any order)
FIXTURES = [
    ("openhermes-2.5-mistral-7b.jinja", "chatml", "<s>", "<|im_end|>", {}),
    ("qwen2-instruct.jinja", "chatml", "", "<|im_end|>",
     {"default_system": "You are a helpful assistant."}),
    ("alia-40b-instruct.jinja", "chatml", "<s>", "</s>",
     {"default_system": "SYSTEM MESSAGE", "lenient": True}),
    ("salamandra-7b-instruct-2024-10.jinja", "chatml", "<s>", "</s>",
     {"default_system": "system message. Today Date: 2024-09-30"}),
    ("llama-2-chat.jinja", "llama2", "<s>", "</s>", {}),
    ("meta-llama-3-8b-instruct.jinja", "llama3", "<|begin_of_text|>", "<|eot_id|>", {}),
    ("mistral-7b-instruct-v0.3.jinja", "mistral", "<s>", "</s>", {}),
    ("mistral-7b-instruct-v0.2.jinja", "mistral-v1", "<s>", "</s>", {}),
    ("mixtral-8x7b-instruct-v0.1.jinja", "mistral-legacy", "<s>", "</s>", {"folds_system": True}),
    ("gemma-2-it.jinja", "gemma", "<bos>", "<eos>", {"folds_system": True}),
    ("phi-3-mini-4k-instruct.jinja", "phi3", "<s>", "<|endoftext|>", {}),
    ("zephyr-7b-beta.jinja", "zephyr", "<s>", "</s>", {}),
    ("deepseek-llm-7b-chat.jinja", "deepseek", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", {}),
    ("deepseek-coder-instruct.jinja", "deepseek-coder", "<｜begin▁of▁sentence｜>", "<|EOT|>",
     {"default_system": DEEPSEEK_CODER_PREAMBLE}),
]

# The conversations of tests/test-chat.c (keep the two in step), and two the
# stricter templates refuse.
CONVERSATIONS = [
    ("system+user", [("system", "You are a helpful assistant."), ("user", "Hello!")]),
    ("user", [("user", "What is 2+2?")]),
    ("multi-turn", [("system", "Be brief."), ("user", "Hi"),
                    ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")]),
    ("multi-turn, no system", [("user", "Hi"), ("assistant", "  Hello there.  "),
                               ("user", "And now?")]),
    ("non-ASCII", [("system", "Respon en català."), ("user", "¿Qué tal? Això és català")]),
    ("emoji", [("user", "I \u2764\ufe0f llamas \U0001f999"), ("assistant", "\U0001f999 ok"),
               ("user", "M\u00e1s \U0001f389")]),
    ("Unicode blanks", [("system", " sys with spaces \n"),
                        ("user", "\u00a0 padded question\u3000\n")]),
    ("Unicode blanks, no system", [("user", "\u2003\u00a0question\u205f"),
                                   ("assistant", "\u3000answer\u00a0\n"), ("user", "\u202fnext\u2029")]),
    ("ends with an answer", [("system", "S"), ("user", "Q"), ("assistant", "A")]),
    ("two users in a row", [("user", "a"), ("user", "b")]),
    ("starts with the assistant", [("assistant", "a"), ("user", "b")]),
]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def make_env():
    # As transformers' _compile_jinja_template (tojson and strftime_now only
    # matter to templates with tools or dates; these have neither in use).
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env


def jinja_render(template, conv, bos, eos, add):
    try:
        return True, template.render(
            messages=[{"role": r, "content": c} for r, c in conv], tools=None, documents=None,
            add_generation_prompt=add, bos_token=bos, eos_token=eos)
    except jinja2.exceptions.TemplateError as e:
        return False, str(e)


def c_render(family, conv, bos, eos, add):
    data = "\x1f".join([family, bos, eos, "1" if add else "0"])
    for role, content in conv:
        data += "\x1e" + role + "\x1f" + content
    p = subprocess.run([DRIVER], input=data.encode(), capture_output=True)
    if p.returncode == 0:
        return "ok", p.stdout.decode()
    if p.returncode == 3:
        return "refused", p.stderr.decode().strip()
    return "failed", "exit %d: %s" % (p.returncode, p.stderr.decode().strip())


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=()):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        if not cond:
            self.failed += 1
            for line in diag:
                print("# " + line)

    def skip(self, name, reason):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, reason))


def main():
    if not os.access(DRIVER, os.X_OK):
        print("Bail out! %s is not built" % DRIVER)
        return 1
    env = make_env()
    tap = Tap()
    for fname, family, bos, eos, notes in FIXTURES:
        with open(os.path.join(TEMPLATES, fname), encoding="utf-8", newline="") as f:
            text = f.read()
        p = subprocess.run([DRIVER, "--detect"], input=text.encode(), capture_output=True)
        got = p.stdout.decode().strip() if p.returncode == 0 else "(%s)" % p.stderr.decode().strip()
        tap.ok(got == family, "%s is detected as %s" % (fname, family),
               ["got %s" % got])
        template = env.from_string(text)
        for cname, conv in CONVERSATIONS:
            for add in (True, False):
                name = "%s: %s, add_generation_prompt=%s" % (fname, cname, add)
                ours = conv
                if "default_system" in notes and conv[0][0] != "system":
                    ours = [("system", notes["default_system"])] + conv
                    name += " (its default system prompt passed explicitly)"
                jok, want = jinja_render(template, conv, bos, eos, add)
                status, got = c_render(family, ours, bos, eos, add)
                if jok and status == "ok":
                    tap.ok(got == want, name, ["expected %r" % want, "got      %r" % got])
                elif not jok and status == "refused":
                    tap.ok(True, name + ": both refuse")
                elif not jok and status == "ok" and notes.get("folds_system") and \
                        conv[0][0] == "system" and jinja_render(template, conv[1:], bos, eos, add)[0]:
                    tap.skip(name, "the template raises (%s); strata joins the system message "
                             "to the first user message" % want)
                elif jok and status == "refused" and conv[0][0] == "system" and \
                        jinja_render(template, conv[1:], bos, eos, add) == (True, want):
                    tap.skip(name, "the template drops the system message (%r, as without "
                             "it); strata refuses: %s" % (want, got))
                elif not jok and status == "ok" and notes.get("lenient"):
                    tap.skip(name, "the template raises (%s); chatml does not check the order "
                             "of roles" % want)
                else:
                    tap.ok(False, name, ["jinja2: %s %r" % ("ok" if jok else "raises", want),
                                         "strata: %s %r" % (status, got)])
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
