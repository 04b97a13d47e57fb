#!/bin/sh
# mkcorpus-http.sh: writes the seed corpus of fuzz-http-request into
# fuzz/corpus/http-request/. Each file is one control byte, 'p' (0x70, bit 0
# clear: /v1/completions) or 'c' (0x63, bit 0 set: /v1/chat/completions), then
# a request body: valid requests of every shape, and the refusals of each field.
set -eu
dir="$(dirname "$0")/corpus/http-request"
mkdir -p "$dir"
n=0
seed() { # seed NAME KIND BODY
	printf '%s%s' "$2" "$3" >"$dir/$1"
	n=$((n + 1))
}
# completions: prompt shapes, sampling, logprobs, echo, stream
seed cmpl-string p '{"model":"m","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
seed cmpl-strings p '{"prompt":["a","b","c"],"n":2,"seed":7}'
seed cmpl-ids p '{"prompt":[1,403,407,261,378],"max_tokens":0,"echo":true,"logprobs":1}'
seed cmpl-id-lists p '{"prompt":[[1,2],[3,4,5]],"max_tokens":1,"logprobs":5,"echo":true,"seed":1234,"temperature":0}'
seed cmpl-stream p '{"prompt":"x","stream":true,"stream_options":{"include_usage":true},"stop":["\n\n","The end"]}'
seed cmpl-extensions p '{"prompt":"x","top_k":40,"top_p":0.95,"min_p":0.05,"repeat_penalty":1.1,"repeat_last_n":64,"ignore_eos":true}'
seed cmpl-nulls p '{"prompt":"x","max_tokens":null,"stop":null,"logprobs":null,"seed":null,"user":"u","best_of":1,"presence_penalty":0,"frequency_penalty":0.0,"logit_bias":{},"suffix":null}'
seed cmpl-unicode p '{"prompt":"H\u00e0bia una vegada \ud83d\ude00 \u00e9s","stop":"\u00e9"}'
seed cmpl-float-int p '{"prompt":"x","max_tokens":16.0,"seed":1e3}'
seed cmpl-big-seed p '{"prompt":"x","seed":18446744073709551615}'
# completions refused
seed bad-not-json p '{"prompt":'
seed bad-trailing p '{"prompt":"x"} x'
seed bad-array-body p '["prompt"]'
seed bad-nan p '{"prompt":"x","temperature":NaN}'
seed bad-nul p '{"prompt":"a\u0000b"}'
seed cmpl-lone-surrogate p '{"prompt":"\udc00"}'
seed bad-utf8 p "$(printf '{"prompt":"\377"}')"
seed bad-prompt-type p '{"prompt":{"a":1}}'
seed bad-prompt-empty p '{"prompt":[]}'
seed bad-prompt-mixed p '{"prompt":[1,"a"]}'
seed bad-ids-negative p '{"prompt":[1,-2]}'
seed bad-ids-huge p '{"prompt":[4294967296]}'
seed bad-max-tokens p '{"prompt":"x","max_tokens":-1}'
seed bad-max-tokens-frac p '{"prompt":"x","max_tokens":1.5}'
seed bad-temperature p '{"prompt":"x","temperature":3}'
seed bad-top-p p '{"prompt":"x","top_p":0}'
seed bad-logprobs p '{"prompt":"x","logprobs":21}'
seed bad-logprobs-bool p '{"prompt":"x","logprobs":true}'
seed bad-stop-empty p '{"prompt":"x","stop":[""]}'
seed bad-stop-many p '{"prompt":"x","stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}'
seed bad-n p '{"prompt":"x","n":0}'
seed bad-choices p '{"prompt":["a","b","c"],"n":50}'
seed bad-penalty p '{"prompt":"x","presence_penalty":0.5}'
seed bad-stream-echo p '{"prompt":"x","stream":true,"echo":true,"logprobs":0}'
seed bad-stream-options p '{"prompt":"x","stream_options":{"include_usage":true}}'
seed bad-deep p '{"prompt":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}'
seed bad-missing p '{"model":"m"}'
# chat
seed chat-basic c '{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":8}'
seed chat-parts c '{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],"max_completion_tokens":4}'
seed chat-logprobs c '{"messages":[{"role":"developer","content":"x"},{"role":"user","content":"y"},{"role":"assistant","content":null},{"role":"user","content":"z"}],"logprobs":true,"top_logprobs":3,"stream":true,"chat_template":"chatml"}'
seed chat-format c '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"},"tools":[],"n":3,"seed":1}'
seed chat-bad-role c '{"messages":[{"role":"tool","content":"x"}]}'
seed chat-bad-empty c '{"messages":[]}'
seed chat-bad-part c '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}'
seed chat-bad-top c '{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}'
seed chat-bad-max c '{"messages":[{"role":"user","content":"x"}],"max_tokens":0}'
seed chat-bad-tools c '{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]}'
seed chat-bad-json-mode c '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}'
seed chat-bad-message c '{"messages":["hi"]}'
echo "wrote $n seeds to $dir"
