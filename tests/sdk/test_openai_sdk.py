"""The gateway through the official OpenAI Python SDK (package `openai`).

Run against a running gateway whose tenant routes the mock models to mock-llm. The Rust test
`services/gateway/tests/it/sdk.rs` builds such a stack and runs this script; by hand:

    GATEWAY_BASE_URL=http://127.0.0.1:8080/v1 SB_KEY=sb_live_... \
    SB_KEY_RATE_LIMITED=sb_live_... SB_KEY_BROKE=sb_live_... SB_MODEL=mock-gpt-4o \
    python tests/sdk/test_openai_sdk.py

Environment:
    GATEWAY_BASE_URL     the gateway's OpenAI base URL, e.g. http://127.0.0.1:PORT/v1
    SB_KEY               a key with no limits
    SB_KEY_RATE_LIMITED  a fresh key with rpm_limit 1 (this script spends its one request)
    SB_KEY_BROKE         a key whose api_key-scoped budget is 0
    SB_MODEL             a chat model the tenant routes to mock-llm, e.g. mock-gpt-4o

Errors must come out as the SDK's own exception types, which is what clients catch. Every
client is built with max_retries=0 so the SDK never retries a 429 or 5xx behind our back.
Exits 0 when every test passes, 1 when one fails, 2 when the environment is incomplete.
"""

import json
import os
import sys
import unittest

try:
    import openai
except ImportError:
    print(
        "error: the `openai` package is not importable by "
        f"{sys.executable}; install it with `pip install 'openai>=1.50,<3'` "
        "(bash scripts/test makes a virtualenv with it at target/sdk-venv)",
        file=sys.stderr,
    )
    sys.exit(2)

ENV_NAMES = ("GATEWAY_BASE_URL", "SB_KEY", "SB_KEY_RATE_LIMITED", "SB_KEY_BROKE", "SB_MODEL")
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Looks something up.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


def env(name):
    return os.environ[name]


def client(key=None):
    return openai.OpenAI(
        base_url=env("GATEWAY_BASE_URL"),
        api_key=key if key is not None else env("SB_KEY"),
        max_retries=0,
        timeout=30.0,
    )


def user(text):
    return [{"role": "user", "content": text}]


class Completions(unittest.TestCase):
    def test_completion_has_content_and_usage(self):
        completion = client().chat.completions.create(model=env("SB_MODEL"), messages=user("hello there"))
        self.assertEqual(completion.object, "chat.completion")
        self.assertEqual(len(completion.choices), 1)
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "stop")
        self.assertEqual(choice.message.role, "assistant")
        self.assertTrue(choice.message.content, "empty content")
        usage = completion.usage
        self.assertIsNotNone(usage)
        # mock-llm counts one token per word.
        self.assertEqual(usage.prompt_tokens, 2)
        self.assertEqual(usage.completion_tokens, len(choice.message.content.split()))
        self.assertEqual(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens)

    def test_raw_response_exposes_status_and_parses(self):
        raw = client().chat.completions.with_raw_response.create(model=env("SB_MODEL"), messages=user("hi"))
        self.assertEqual(raw.status_code, 200)
        self.assertEqual(raw.headers.get("content-type"), "application/json")
        self.assertEqual(raw.parse().object, "chat.completion")

    def test_stream_deltas_concatenate_and_the_last_chunk_has_usage(self):
        stream = client().chat.completions.create(
            model=env("SB_MODEL"),
            messages=user("stream please"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        self.assertGreater(len(chunks), 2)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertTrue(content, "no content in the deltas")
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        self.assertEqual(finishes, ["stop"])
        last = chunks[-1]
        self.assertEqual(last.choices, [])
        self.assertIsNotNone(last.usage, "the last chunk has no usage")
        self.assertEqual(last.usage.prompt_tokens, 2)
        self.assertEqual(last.usage.completion_tokens, len(content.split()))
        for chunk in chunks[:-1]:
            self.assertIsNone(chunk.usage, "usage before the last chunk")

    def test_tool_call_and_the_answer_after_its_result(self):
        c = client()
        messages = user("what is the weather?")
        completion = c.chat.completions.create(model=env("SB_MODEL"), messages=messages, tools=[TOOL])
        choice = completion.choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        calls = choice.message.tool_calls
        self.assertIsNotNone(calls, "no tool_calls in the message")
        self.assertEqual(len(calls), 1)
        call = calls[0]
        self.assertEqual(call.type, "function")
        self.assertTrue(call.id)
        self.assertEqual(call.function.name, "lookup")
        self.assertEqual(json.loads(call.function.arguments), {"query": "mock"})
        # Hand the result back, with the assistant's tool call in the history: a text answer.
        messages = messages + [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        answer = c.chat.completions.create(model=env("SB_MODEL"), messages=messages, tools=[TOOL])
        self.assertEqual(answer.choices[0].finish_reason, "stop")
        self.assertTrue(answer.choices[0].message.content)
        self.assertIsNone(answer.choices[0].message.tool_calls)

    def test_streamed_tool_call_is_assembled_by_the_sdk_helper(self):
        with client().chat.completions.stream(
            model=env("SB_MODEL"), messages=user("look it up"), tools=[TOOL]
        ) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
        calls = final.choices[0].message.tool_calls
        self.assertEqual(final.choices[0].finish_reason, "tool_calls")
        self.assertEqual([c.function.name for c in calls], ["lookup"])
        self.assertEqual(json.loads(calls[0].function.arguments), {"query": "mock"})

    def test_embeddings_decode_to_floats(self):
        # Without encoding_format the SDK asks for base64 and decodes it; a list of floats
        # in the answer is accepted as well.
        result = client().embeddings.create(model="mock-embedding", input="a b c")
        self.assertEqual(len(result.data), 1)
        vector = result.data[0].embedding
        self.assertGreater(len(vector), 0)
        self.assertTrue(all(isinstance(x, float) for x in vector))
        self.assertEqual(result.usage.prompt_tokens, 3)

    def test_models_list_the_mock_models(self):
        ids = [m.id for m in client().models.list()]
        self.assertIn(env("SB_MODEL"), ids)


class Errors(unittest.TestCase):
    def test_bad_key_is_authentication_error(self):
        with self.assertRaises(openai.AuthenticationError) as caught:
            client("sk-not-ours").chat.completions.create(model=env("SB_MODEL"), messages=user("hi"))
        e = caught.exception
        self.assertEqual(e.status_code, 401)
        self.assertEqual(e.code, "invalid_api_key")
        self.assertEqual(e.type, "invalid_request_error")

    def test_second_request_on_a_one_rpm_key_is_rate_limit_error(self):
        c = client(env("SB_KEY_RATE_LIMITED"))
        c.chat.completions.create(model=env("SB_MODEL"), messages=user("first"))
        with self.assertRaises(openai.RateLimitError) as caught:
            c.chat.completions.create(model=env("SB_MODEL"), messages=user("second"))
        e = caught.exception
        self.assertEqual(e.status_code, 429)
        self.assertEqual(e.code, "rate_limit_exceeded")
        self.assertEqual(e.type, "rate_limit_error")
        retry_after = e.response.headers.get("retry-after")
        self.assertIsNotNone(retry_after, "429 without retry-after")
        self.assertGreaterEqual(int(retry_after), 1)
        self.assertEqual(e.response.headers.get("x-ratelimit-limit-requests"), "1")

    def test_exhausted_budget_is_a_402_api_status_error(self):
        with self.assertRaises(openai.APIStatusError) as caught:
            client(env("SB_KEY_BROKE")).chat.completions.create(model=env("SB_MODEL"), messages=user("hi"))
        e = caught.exception
        self.assertEqual(e.status_code, 402)
        # The SDK has no class for 402: a plain APIStatusError, with the error object as body.
        self.assertIs(type(e), openai.APIStatusError)
        self.assertEqual(e.code, "budget_exceeded")
        self.assertEqual(e.type, "budget_exceeded")
        self.assertEqual(e.body["type"], "budget_exceeded")
        self.assertIn("budget", e.message)

    def test_exhausted_budget_fails_a_stream_before_it_starts(self):
        with self.assertRaises(openai.APIStatusError) as caught:
            client(env("SB_KEY_BROKE")).chat.completions.create(
                model=env("SB_MODEL"), messages=user("hi"), stream=True
            )
        self.assertEqual(caught.exception.status_code, 402)
        self.assertEqual(caught.exception.code, "budget_exceeded")

    def test_unknown_model_is_not_found_error(self):
        with self.assertRaises(openai.NotFoundError) as caught:
            client().chat.completions.create(model="gpt-7-turbo", messages=user("hi"))
        self.assertEqual(caught.exception.code, "model_not_found")


def main():
    missing = [name for name in ENV_NAMES if not os.environ.get(name)]
    if missing:
        print(f"error: set {', '.join(missing)} (see this script's docstring)", file=sys.stderr)
        return 2
    print(f"openai {openai.__version__} (python {sys.version.split()[0]}) against {env('GATEWAY_BASE_URL')}")
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    failed = len(result.failures) + len(result.errors)
    print(f"SDK tests: {result.testsRun - failed} passed, {failed} failed")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
