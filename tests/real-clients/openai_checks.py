"""Drives `caplens engine serve` with the real `openai` client (which validates response shapes).

Usage: python openai_checks.py BASE_URL MODEL
Prints one `ok <check>` or `FAIL <check>: <why>` line per check; exits 1 when any check failed.
"""

import sys
import traceback

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="not-a-real-key", max_retries=0, timeout=300)
EOS = "<|im_end|>"
failures = 0


def check(name):
    def run(fn):
        global failures
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is reported, then counted
            failures += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
        return fn

    return run


def assert_tokens_join(choice, expected_text):
    lp = choice.logprobs
    assert lp is not None, "no logprobs"
    joined = "".join(lp.tokens)
    assert joined == expected_text, f"tokens join to {joined!r}, text is {expected_text!r}"
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    offsets = [0]
    for t in lp.tokens[:-1]:
        offsets.append(offsets[-1] + len(t))
    assert lp.text_offset == offsets, f"text_offset {lp.text_offset} != {offsets}"


PROMPTS = [
    "Question: What is 2 + 3?\nAnswer:",
    "Question: What is the capital of France?\nAnswer:",
    "Question: Name a colour.\nAnswer:",
]


def greedy_completion(prompt, **kw):
    return client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stop=["\n\n"], **kw)


@check("models lists the served model")
def _():
    ids = [m.id for m in client.models.list().data]
    assert ids == [model], ids


@check("completions: one prompt, n=2, logprobs=2")
def _():
    r = client.completions.create(
        model=model, prompt=PROMPTS[0], max_tokens=24, temperature=0.8, seed=7, n=2, logprobs=2
    )
    assert [c.index for c in r.choices] == [0, 1], [c.index for c in r.choices]
    for c in r.choices:
        assert EOS not in c.text, c.text
        assert c.finish_reason in ("stop", "length"), c.finish_reason
        assert_tokens_join(c, c.text)
        assert all(len(top) >= 1 for top in c.logprobs.top_logprobs)
    assert r.usage.completion_tokens >= 2


@check("completions: a prompt array gives one choice per (prompt, sample), index = prompt_i * n + j")
def _():
    n = 2
    r = client.completions.create(
        model=model, prompt=PROMPTS, max_tokens=24, temperature=0, n=n, stop=["\n\n"]
    )
    assert sorted(c.index for c in r.choices) == list(range(len(PROMPTS) * n))
    by_index = {c.index: c for c in r.choices}
    for i, p in enumerate(PROMPTS):
        alone = greedy_completion(p, n=n).choices
        for j in range(n):
            got = by_index[i * n + j].text
            assert got == alone[j].text, f"prompt {i} sample {j}: {got!r} != {alone[j].text!r} (asked alone)"
            assert EOS not in got


@check("completions: stream=True sends text_completion chunks and [DONE]; include_usage")
def _():
    expected = greedy_completion(PROMPTS[1], n=2)
    stream = client.completions.create(
        model=model, prompt=PROMPTS[1], max_tokens=24, temperature=0, stop=["\n\n"], n=2,
        stream=True, stream_options={"include_usage": True},
    )
    texts, finish, usage, chunks = {}, {}, None, 0
    for chunk in stream:
        chunks += 1
        assert chunk.object == "text_completion", chunk.object
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
            if c.finish_reason:
                finish[c.index] = c.finish_reason
        if chunk.usage is not None:
            assert not chunk.choices, "the usage chunk has no choices"
            usage = chunk.usage
    assert texts == {c.index: c.text for c in expected.choices}, (texts, expected.choices)
    assert finish == {c.index: c.finish_reason for c in expected.choices}, finish
    assert usage is not None and usage.total_tokens == expected.usage.total_tokens, usage
    assert chunks >= 3, chunks


@check("completions: echo + logprobs scores the prompt (max_tokens 0 and 1)")
def _():
    text = "The capital of France is Paris."
    r0 = client.completions.create(model=model, prompt=text, max_tokens=0, echo=True, logprobs=1, temperature=0)
    c = r0.choices[0]
    assert c.text == text, c.text
    assert_tokens_join(c, text)
    lp = c.logprobs
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, "first token has no logprob"
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:]), lp.token_logprobs
    for tok, x, top in zip(lp.tokens[1:], lp.token_logprobs[1:], lp.top_logprobs[1:]):
        assert top[tok] == x, (tok, x, top)
        assert max(top.values()) >= x
    assert r0.usage.prompt_tokens == len(lp.tokens), r0.usage
    # lm-eval's request: max_tokens 1, the prompt tokens then one generated token.
    r1 = client.completions.create(model=model, prompt=text, max_tokens=1, echo=True, logprobs=1, temperature=0)
    c1 = r1.choices[0]
    assert c1.text.startswith(text) and EOS not in c1.text, c1.text
    assert_tokens_join(c1, c1.text)
    k = len(lp.tokens)
    assert c1.logprobs.tokens[:k] == lp.tokens
    assert c1.logprobs.token_logprobs[1:k] == lp.token_logprobs[1:], "the same scores with or without a generated token"
    assert len(c1.logprobs.tokens) in (k, k + 1)


@check("chat: plain, n=2, logprobs with top_logprobs=2")
def _():
    r = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "What is 2 + 3? Answer with a number."}],
        max_tokens=32, temperature=0, n=2, logprobs=True, top_logprobs=2, seed=3,
    )
    assert r.object == "chat.completion"
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        content = c.message.content
        assert c.message.role == "assistant" and content and EOS not in content, content
        tokens = [t.token for t in c.logprobs.content]
        assert EOS not in tokens
        assert "".join(tokens) == content, (tokens, content)
        assert all(len(t.top_logprobs) == 2 for t in c.logprobs.content)
        assert c.finish_reason in ("stop", "length")


@check("chat: stream=True sends chat.completion.chunk deltas, include_usage, [DONE]")
def _():
    messages = [{"role": "user", "content": "Name a colour."}]
    expected = client.chat.completions.create(model=model, messages=messages, max_tokens=32, temperature=0)
    stream = client.chat.completions.create(
        model=model, messages=messages, max_tokens=32, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    content, role, finish, usage = "", None, None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk", chunk.object
        for c in chunk.choices:
            role = c.delta.role or role
            content += c.delta.content or ""
            finish = c.finish_reason or finish
        if chunk.usage is not None:
            assert not chunk.choices
            usage = chunk.usage
    assert role == "assistant", role
    assert content == expected.choices[0].message.content, (content, expected.choices[0].message.content)
    assert finish == expected.choices[0].finish_reason, finish
    assert usage is not None and usage.total_tokens == expected.usage.total_tokens, usage


@check("errors: vLLM's shapes (unknown model 404, unsupported content 400)")
def _():
    try:
        client.completions.create(model="gpt-5", prompt="x", max_tokens=1)
        raise AssertionError("an unknown model was accepted")
    except openai.NotFoundError as e:
        assert "gpt-5" in str(e), e
    try:
        client.chat.completions.create(
            model=model, max_tokens=1,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}],
        )
        raise AssertionError("an image part was accepted")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "not text" in str(e), e


sys.exit(1 if failures else 0)
