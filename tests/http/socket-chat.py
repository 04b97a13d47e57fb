"""socket-chat.py SOCKET MESSAGES-JSON TEMPLATE MAX_TOKENS: a greedy Generate
with chat messages straight over stratad's socket (tests/pyclient), printing
the text, for tests/test-http.sh to compare with strata-http's chat reply."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pyclient"))
import strata_client as sc  # noqa: E402

sock, messages, template, max_tokens = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
p = sc.pb2()
msgs = [p.ChatMessage(role=m["role"], content=m["content"]) for m in messages]
with sc.connect(sock, timeout=60) as conn:
    text, _, _ = conn.generate("", messages=msgs, chat_template=template, max_tokens=max_tokens, temperature=0.0)
sys.stdout.write(text)
