// openai.mjs: strata-http driven by the official `openai` npm package, as the
// programs people point at an OpenAI-compatible server use it. Run by
// tests/test-http.sh, which starts stratad and strata-http and reads the lines
// this prints: "ok - ...", "not ok - ...", "skip - ...".
//
// Environment: STRATA_HTTP_URL (http://HOST:PORT/v1), STRATA_HTTP_KEYED_URL and
// STRATA_HTTP_KEY (an instance that requires that key), STRATA_OPENAI_MODULES
// (the folder holding node_modules/openai), STRATA_CHAT=1 and
// STRATA_LOGPROBS=1 when stratad supports chat messages and log-probabilities.
import { createRequire } from "node:module";
import path from "node:path";

const env = process.env;
let OpenAI;
try {
	const require = createRequire(path.join(env.STRATA_OPENAI_MODULES, "package.json"));
	const mod = require("openai");
	OpenAI = mod.OpenAI ?? mod.default ?? mod;
} catch (e) {
	console.log(`skip - the openai package is not installed (${e.message.split("\n")[0]})`);
	process.exit(0);
}

// The text a list of logprobs tokens spells: a token that is not valid UTF-8 on its own
// is named "bytes:\xNN..." (as OpenAI does); its bytes join the others' before decoding,
// with U+FFFD for what stays invalid, as the reply's text has it.
function tokensText(tokens) {
	const parts = [];
	for (const t of tokens) {
		if (t.startsWith("bytes:"))
			for (const m of t.slice(6).matchAll(/\\x([0-9a-fA-F]{2})/g)) parts.push(parseInt(m[1], 16));
		else
			parts.push(...new TextEncoder().encode(t));
	}
	return new TextDecoder("utf-8").decode(new Uint8Array(parts));
}

let failed = 0;
function ok(cond, desc, detail) {
	console.log(`${cond ? "ok" : "not ok"} - ${desc}`);
	if (!cond) {
		failed++;
		if (detail !== undefined) console.log(`# ${JSON.stringify(detail)}`);
	}
}
function skip(desc) {
	console.log(`skip - ${desc}`);
}
// Runs one check; an exception fails it with its message.
async function check(desc, fn) {
	try {
		await fn();
	} catch (e) {
		ok(false, `${desc}: ${e.constructor.name}: ${e.message}`);
	}
}

// No retries: a 429 or 503 must reach the test, not be retried away.
const client = new OpenAI({ baseURL: env.STRATA_HTTP_URL, apiKey: "unused", maxRetries: 0 });
const prompt = "Once upon a time";
let model = "";

await check("models.list", async () => {
	const list = await client.models.list();
	const data = list.data ?? [];
	model = data[0]?.id ?? "";
	ok(data.length === 1 && model.length > 0 && data[0].object === "model",
	   `models.list() gives one model (${model})`, list);
	const one = await client.models.retrieve(model);
	ok(one.id === model, "models.retrieve(id) gives it back");
});

let greedy = "";
await check("completions.create", async () => {
	const r = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0 });
	greedy = r.choices[0].text;
	ok(r.object === "text_completion" && greedy.length > 0 && r.choices[0].finish_reason === "length",
	   "completions.create: text, finish_reason length", r);
	ok(r.usage.completion_tokens === 24 && r.usage.prompt_tokens > 0 &&
	   r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens,
	   "completions.create: usage adds up", r.usage);
});

await check("completions stream", async () => {
	const stream = await client.completions.create({ model, prompt, max_tokens: 24, temperature: 0, stream: true });
	let text = "", finish = null, n = 0;
	for await (const chunk of stream) {
		n++;
		text += chunk.choices[0]?.text ?? "";
		finish = chunk.choices[0]?.finish_reason ?? finish;
	}
	ok(text === greedy && finish === "length" && n > 2,
	   `completions stream: ${n} chunks add up to the same text`, { text, greedy });
});

await check("completions n and seed", async () => {
	const r = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 1, n: 2, seed: 42 });
	const again = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 1, n: 2, seed: 42 });
	ok(r.choices.length === 2 && r.choices[0].index === 0 && r.choices[1].index === 1,
	   "n: 2 gives two choices, indexed");
	ok(r.choices[0].text === again.choices[0].text && r.choices[1].text === again.choices[1].text,
	   "the same seed gives the same choices");
});

if (env.STRATA_CHAT === "1") {
	const messages = [{ role: "system", content: "You tell stories." }, { role: "user", content: prompt }];
	let chat = "";
	await check("chat.completions.create", async () => {
		const r = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0,
			chat_template: "chatml" });
		chat = r.choices[0].message.content;
		ok(r.object === "chat.completion" && r.choices[0].message.role === "assistant" &&
		   typeof chat === "string" && ["stop", "length"].includes(r.choices[0].finish_reason),
		   "chat.completions.create: an assistant message and a finish_reason", r);
		ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0, "chat: usage", r.usage);
	});
	await check("chat stream", async () => {
		const stream = await client.chat.completions.create({ model, messages, max_tokens: 16, temperature: 0,
			chat_template: "chatml", stream: true, stream_options: { include_usage: true } });
		let text = "", role = null, finish = null, usage = null;
		for await (const chunk of stream) {
			const c = chunk.choices[0];
			if (c?.delta?.role) role = c.delta.role;
			text += c?.delta?.content ?? "";
			finish = c?.finish_reason ?? finish;
			if (chunk.usage) usage = chunk.usage;
		}
		ok(role === "assistant" && text === chat && finish !== null,
		   "chat stream: role first, then the same text", { text, chat });
		ok(usage && usage.completion_tokens > 0, "chat stream: include_usage gives the usage chunk", usage);
	});
	if (env.STRATA_LOGPROBS === "1") {
		await check("chat logprobs", async () => {
			const r = await client.chat.completions.create({ model, messages, max_tokens: 6, temperature: 0,
				chat_template: "chatml", logprobs: true, top_logprobs: 3 });
			const content = r.choices[0].logprobs?.content ?? [];
			ok(content.length > 0 && content.every((t) => typeof t.token === "string" && t.logprob <= 0 &&
				Array.isArray(t.bytes) && t.top_logprobs.length === 3 &&
				t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob),
			   "chat logprobs: each token with its logprob, bytes and 3 alternatives", content[0]);
			ok(content.every((t) => Math.abs(t.logprob - t.top_logprobs[0].logprob) < 1e-6),
			   "chat logprobs: greedy tokens are their place's most likely");
		});
	} else {
		skip("chat logprobs: stratad has no log-probabilities yet");
	}
} else {
	skip("chat: stratad does not render chat messages yet (Generate.messages)");
}

if (env.STRATA_LOGPROBS === "1") {
	await check("completions logprobs", async () => {
		const r = await client.completions.create({ model, prompt, max_tokens: 5, temperature: 0, logprobs: 2 });
		const lp = r.choices[0].logprobs;
		ok(lp.tokens.length === 5 && lp.token_logprobs.length === 5 && lp.top_logprobs.length === 5 &&
		   lp.text_offset.length === 5 && tokensText(lp.tokens) === r.choices[0].text,
		   "completions logprobs: tokens, token_logprobs, top_logprobs, text_offset", lp);
		ok(lp.text_offset[0] === prompt.length, "text_offset counts from the prompt's start", lp.text_offset);
	});
	await check("completions echo", async () => {
		const r = await client.completions.create({ model, prompt, max_tokens: 0, echo: true, logprobs: 1 });
		const lp = r.choices[0].logprobs;
		ok(r.choices[0].text === prompt && lp.token_logprobs[0] === null &&
		   lp.token_logprobs.slice(1).every((x) => x <= 0) && r.usage.completion_tokens === 0,
		   "echo with max_tokens 0: the prompt, its first token's logprob null", lp);
	});
} else {
	skip("completions logprobs: stratad has no log-probabilities yet");
}

await check("errors", async () => {
	try {
		await client.completions.create({ model, prompt, max_tokens: -1 });
		ok(false, "a bad max_tokens is refused");
	} catch (e) {
		ok(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "max_tokens",
		   "a bad max_tokens: BadRequestError, status 400, param max_tokens", { status: e.status, param: e.param });
	}
	try {
		await client.models.retrieve("no-such-model");
		ok(false, "an unknown model is refused");
	} catch (e) {
		ok(e instanceof OpenAI.NotFoundError && e.code === "model_not_found", "an unknown model: NotFoundError");
	}
	const keyed = new OpenAI({ baseURL: env.STRATA_HTTP_KEYED_URL, apiKey: "wrong", maxRetries: 0 });
	try {
		await keyed.models.list();
		ok(false, "a wrong key is refused");
	} catch (e) {
		ok(e instanceof OpenAI.AuthenticationError && e.status === 401, "a wrong key: AuthenticationError 401");
	}
	const right = new OpenAI({ baseURL: env.STRATA_HTTP_KEYED_URL, apiKey: env.STRATA_HTTP_KEY, maxRetries: 0 });
	const r = await right.completions.create({ model, prompt, max_tokens: 2 });
	ok(r.choices.length === 1, "the right key is let in");
});

process.exit(failed ? 1 : 0);
