#!/usr/bin/env python3
"""startup.py: seconds from launching stratad to its READY=1, as systemd would see them.

    bench/startup.py [--repeat N] [--drop] -- STRATAD ARGS...

Runs the command with NOTIFY_SOCKET pointing at a datagram socket of its own, prints the
time of every STATUS= it sends and of READY=1, then stops it (SIGTERM). --drop empties the
page cache before each run (root: sync; echo 3 > /proc/sys/vm/drop_caches). Measures; asserts
nothing. Not run by make check.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def one_run(cmd, timeout):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        env = dict(os.environ, NOTIFY_SOCKET=path)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        ready = None
        try:
            while ready is None and time.monotonic() - t0 < timeout:
                s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
                try:
                    msg = s.recv(4096).decode(errors="replace")
                except socket.timeout:
                    break
                t = time.monotonic() - t0
                for line in msg.splitlines():
                    if line.startswith("STATUS="):
                        print(f"  {t:7.2f} s  {line[7:]}")
                    elif line == "READY=1":
                        ready = t
                if p.poll() is not None:
                    break
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait()
            s.close()
        return ready


def main(argv):
    repeat, drop = 1, False
    while argv and argv[0] != "--":
        a = argv.pop(0)
        if a == "--repeat":
            repeat = int(argv.pop(0))
        elif a == "--drop":
            drop = True
        else:
            sys.exit(__doc__)
    if not argv or len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1:]
    for i in range(repeat):
        if drop:
            drop_caches()
        ready = one_run(cmd, 600)
        print(f"run {i + 1}: " + (f"READY=1 after {ready:.2f} s" if ready is not None
                                  else "no READY=1"))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
