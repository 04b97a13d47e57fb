#!/usr/bin/env python3
"""chat-pty.py: drive `strata chat` on a pseudo-terminal as a person would:
type lines at its prompt, read the replies, press Ctrl-C and Ctrl-D. Prints
what happened as one JSON object on stdout for tests/test-score-chat.sh to
check; checks nothing itself. Needs only Python's standard library.

    chat-pty.py SCENARIO STRATA [ARG...]

SCENARIO is "history" (two turns, Ctrl-C at the prompt, Ctrl-D), "cancel"
(two long replies each stopped by Ctrl-C, then Ctrl-D) or "idle" (a turn,
IDLE_SECONDS (environment) at the prompt, another turn, Ctrl-D). Run strata with
--verbose: each turn's summary line is how the turns are told apart.
"""
import json
import os
import pty
import re
import select
import sys
import time

PROMPT = re.compile(r"(?:^|\n)> ")
SUMMARY = re.compile(r"strata: (\d+) tokens at [^;]*; prompt (\d+) tokens[^\n]*finish (\w+)")


class Term:
    def __init__(self, argv):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(argv[0], argv)
        self.out = ""  # everything the terminal showed, \r removed
        self.mark = 0  # where the next expect starts looking

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child has gone
            data = b""
        if not data:
            raise EOFError
        self.out += data.decode("utf-8", "replace").replace("\r", "")
        return True

    def expect(self, pattern, timeout=60):
        """The first match of pattern after the mark; the mark moves past it."""
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.out, self.mark)
            if m:
                self.mark = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("waiting for %r" % pattern.pattern)
            self.read(left)

    def wait_bytes(self, n, timeout=60):
        """Until n more characters than the mark have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.out) < self.mark + n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("waiting for %d characters" % n)
            self.read(left)

    def send(self, s):
        os.write(self.fd, s.encode())

    def finish(self, timeout=30):
        """The exit status (or -signal) once the child ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                self.read(0.1)
            except EOFError:
                pass
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        return None


def turn(t, line):
    """Type a line; wait for the reply's summary and the next prompt."""
    t.send(line + "\n")
    start = t.mark
    m = t.expect(SUMMARY)
    t.expect(PROMPT)
    return {"generated": int(m.group(1)), "prompt": int(m.group(2)), "finish": m.group(3),
            "shown": t.out[start:m.start()]}


def cancelled_turn(t, line):
    """Type a line; once the reply has streamed a while, press Ctrl-C."""
    t.send(line + "\n")
    t.wait_bytes(len(line) + 200)
    t.send("\x03")
    cancelling = t.expect(re.compile(r"cancelling")) is not None
    m = t.expect(SUMMARY)
    t.expect(PROMPT)
    return {"generated": int(m.group(1)), "prompt": int(m.group(2)), "finish": m.group(3),
            "cancelling_shown": cancelling}


def main():
    scenario, argv = sys.argv[1], sys.argv[2:]
    t = Term(argv)
    res = {"turns": []}
    try:
        t.expect(PROMPT)
        res["first_prompt"] = True
        if scenario == "history":
            res["turns"].append(turn(t, "Hello, who are you?"))
            res["turns"].append(turn(t, "Tell me about the park."))
            t.send("unsent words\x03")  # Ctrl-C at the prompt drops the line
            m = t.expect(re.compile(r"Ctrl-D ends the conversation"))
            t.expect(PROMPT)
            res["reminder"] = m is not None
        elif scenario == "idle":
            res["turns"].append(turn(t, "Hello."))
            time.sleep(float(os.environ.get("IDLE_SECONDS", "2")))
            res["turns"].append(turn(t, "Hello again."))
        else:
            res["turns"].append(cancelled_turn(t, "Tell me a long story."))
            res["turns"].append(cancelled_turn(t, "Go on."))
        t.send("\x04")  # Ctrl-D on an empty line
        res["exit"] = t.finish()
    except (TimeoutError, EOFError) as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
        res["exit"] = t.finish(5)
    res["transcript"] = t.out[-4000:]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
