#!/bin/sh
# mkcorpus-text.sh: writes the seed corpora of fuzz-tokenize, fuzz-chat and
# fuzz-settings into fuzz/corpus/tokenize/, chat/ and settings/ (see
# fuzz/README.md for the control bytes). Run from anywhere:
# sh fuzz/mkcorpus-text.sh
set -eu
src=$(dirname "$0")
tok="$src/corpus/tokenize"
chat="$src/corpus/chat"
set_="$src/corpus/settings"
mkdir -p "$tok" "$chat" "$set_"

# tok NAME CONTROL TEXT: CONTROL is three octal digits (printf's \NNN)
tok() { printf "\\$2%s" "$3" >"$tok/$1"; }
# text in the languages ALIA serves, with what a tokenizer trips on
es='Había una vez, en un lugar de la Mancha, un niño que soñaba.'
ca='Hi havia una vegada una nena que es deia Núria i volia ser pilot.'
eu='Behin batean, Gasteizko plazan, neska bat zegoen.'
mix='Emoji 😀👍🏽, CJK 日本語, Greek αβγ, tabs	and  double  spaces
new lines

end'
for v in 0 1 2 3; do
	tok "v$v-es" "00$v" "$es"
	tok "v$v-ca-bos" "00$((v + 4))" "$ca"
	tok "v$v-eu-room3" "14$v" "$eu"
	tok "v$v-mixed" "00$v" "$mix"
	tok "v$v-special" "01$v" '<s>Hola</s><|begin_of_text|>x<|eot_id|><tool>y<unk>'
	tok "v$v-spelled" "00$v" '<s>Hola</s><|eot_id|><tool>'
	tok "v$v-sp-char" "00$v" '▁▁ x ▁y'
	tok "v$v-empty" "00$v" ''
	printf "\\00$v"'a\000b\377\376 \300\200 \355\240\200 \364\220\200\200 \342\202' >"$tok/v$v-bad-utf8"
	printf "\\02$v"'\003\001\004\001\105\001\000\001\377\000\060\000' >"$tok/v$v-ids"
	printf "\\03$v"'\002\000\003\000\346\000\202\000\254\000' >"$tok/v$v-ids-special"
done

# chat: CONTROL (family | 16 for the generation prompt), then messages split
# by \001, each a role letter (A system, B user, C assistant, D tool, E other)
# and its content
f=0
while [ $f -lt 11 ]; do
	printf "\\$(printf '%03o' $((16 + f)))"'AEres un asistente.\001BHola, ¿qué tal?\001C  Muy bien.  \001BY tú?' >"$chat/family$f-conversation"
	printf "\\$(printf '%03o' $f)"'B\001C\001B\001C\001B' >"$chat/family$f-empty-turns"
	printf "\\$(printf '%03o' $((16 + f)))"'DTool output\001E?\001AOnly system' >"$chat/family$f-odd-roles"
	f=$((f + 1))
done
# the templates of tests/chat-templates as chat_detect sees them
for t in "$src"/../tests/chat-templates/*.jinja; do
	cp "$t" "$chat/template-$(basename "$t" .jinja)"
done
# settings: the shipped file (every key commented out), every key set, and
# the lines the parser refuses
cp "$src/../packaging/stratad.conf" "$set_/shipped"
sed -n 's/^#\([a-z-]* = \)/\1/p' "$src/../packaging/stratad.conf" >"$set_/every-key"
printf '\357\273\277memory-budget = 6G\r\nthreads=2\r\n\t# comment\n\n  ctx-size =   512  \n' >"$set_/bom-crlf"
printf 'memory-budget = 1.5T\nkv-budget = 0\nkv-type = q4_0\ndraft = lookup\nio = mmap\nmlock = yes\n' >"$set_/values"
printf 'threads = -1\n' >"$set_/bad-number"
printf 'memory-budget = 18446744073709551616\n' >"$set_/bad-overflow"
printf 'no equals sign\n' >"$set_/bad-no-equals"
printf 'colour = blue\n' >"$set_/bad-unknown"
printf 'model = a\000b\n' >"$set_/bad-nul"
printf 'chat-template = klingon\n' >"$set_/bad-template"
printf 'socket = %0120d\n' 0 >"$set_/bad-socket-long"
echo "wrote $(ls "$tok" | wc -l) tokenize, $(ls "$chat" | wc -l) chat and $(ls "$set_" | wc -l) settings seeds"
