# tokenizer/chat.mk: chat templates (tokenizer/chat.c): the family of a
# model's Jinja chat template recognized from its text, and rendered in C.
# A convenience library of its own for now, linked by nothing but its tests;
# it joins the tokenizer's library when the tokenizer moves into tokenizer/.
noinst_LIBRARIES += tokenizer/libchat.a
tokenizer_libchat_a_SOURCES = tokenizer/chat.c tokenizer/chat.h

# test-chat: renderings frozen as C strings, detection, refusals, names.
# chat-reference.py: the same renderer against jinja2 live, through the
# chat-render driver (skips without python3-jinja2).
check_PROGRAMS += tests/test-chat tests/chat-render
TESTS += tests/test-chat tests/chat-reference.py
tests_test_chat_SOURCES = tests/test-chat.c
tests_test_chat_LDADD = tokenizer/libchat.a
tests_chat_render_SOURCES = tests/chat-render.c
tests_chat_render_LDADD = tokenizer/libchat.a
EXTRA_DIST += tests/chat-reference.py \
	tests/chat-templates/README.md \
	tests/chat-templates/alia-40b-instruct.jinja \
	tests/chat-templates/deepseek-coder-instruct.jinja \
	tests/chat-templates/deepseek-llm-7b-chat.jinja \
	tests/chat-templates/gemma-2-it.jinja \
	tests/chat-templates/llama-2-chat.jinja \
	tests/chat-templates/meta-llama-3-8b-instruct.jinja \
	tests/chat-templates/mistral-7b-instruct-v0.2.jinja \
	tests/chat-templates/mistral-7b-instruct-v0.3.jinja \
	tests/chat-templates/mixtral-8x7b-instruct-v0.1.jinja \
	tests/chat-templates/openhermes-2.5-mistral-7b.jinja \
	tests/chat-templates/phi-3-mini-4k-instruct.jinja \
	tests/chat-templates/qwen2-instruct.jinja \
	tests/chat-templates/salamandra-7b-instruct-2024-10.jinja \
	tests/chat-templates/zephyr-7b-beta.jinja
