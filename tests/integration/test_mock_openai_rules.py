"""test_mock_openai_rules.py: the mock OpenAI server (tools/mock-openai)
refuses what the real API refuses, with errors shaped like the API's
({"error": {message, type, param, code}}), so that a client the mock accepts
is one the API accepts:

- unknown top-level parameters (unknown_parameter, param names it);
- temperature / top_p other than 1, and max_tokens, stop and the penalties,
  with a reasoning model (gpt-5*, o-series); other models take them;
- prompt_cache_key and safety_identifier over 64 characters, a Responses
  max_output_tokens under 16, a bad json_schema name;
- the strict-mode schema rules (additionalProperties false, every property
  required, no object or array in a type union, root an object, keywords,
  formats, nesting, property and enum counts): 400 invalid_json_schema;
- a unique x-request-id on every answer;
- the answer written as a model writes JSON: a URL's slashes are not
  escaped ("\\/" would cost output tokens a real answer does not have);
- 429 as OpenAI sends it (no retry-after headers, the limit hit named in the
  message and type) by default, and Azure's retry-after / retry-after-ms with
  --retry-header azure.

The mock is started on 127.0.0.1 on a free port for each test.
"""
import copy
import json
import unittest
import urllib.error
import urllib.request

from harness import IntakeTest
from test_gpt_batch import KEY, MockOpenAIMixin

SCHEMA = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "email_id": {"type": "string"},
                    "name": {"type": ["string", "null"], "description": "a name"},
                    "location": {"description": "where", "anyOf": [
                        {"type": "object", "properties": {"city": {"type": ["string", "null"]}},
                         "required": ["city"], "additionalProperties": False},
                        {"type": "null"}]},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "required": ["email_id", "name", "location", "score"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["results"],
    "additionalProperties": False,
}

USER = '<email id="m1">\nFrom: a@b.c\n\nCandidate: Ann Lee\n</email>\n'


def responses_body(schema=None, **extra):
    body = {"model": "gpt-5-mini", "instructions": "Extract.", "store": False,
            "input": [{"role": "user", "content": USER}],
            "text": {"format": {"type": "json_schema", "name": "email_extractions",
                                "strict": True, "schema": schema or SCHEMA},
                     "verbosity": "low"},
            "reasoning": {"effort": "low"}, "max_output_tokens": 2000,
            "prompt_cache_key": "intake-extraction-v1"}
    body.update(extra)
    return body


def chat_body(schema=None, **extra):
    body = {"model": "gpt-5-mini",
            "messages": [{"role": "developer", "content": "Extract."},
                         {"role": "user", "content": USER}],
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "email_extractions", "strict": True,
                                                "schema": schema or SCHEMA}},
            "reasoning_effort": "low", "max_completion_tokens": 2000}
    body.update(extra)
    return body


def nested(levels):
    """An object schema `levels` levels deep (the root is level 1)."""
    s = {"type": "string"}
    for _ in range(levels - 1):
        s = {"type": "object", "properties": {"x": s}, "required": ["x"],
             "additionalProperties": False}
    return {"type": "object", "properties": {"x": s}, "required": ["x"],
            "additionalProperties": False}


class MockRulesTest(MockOpenAIMixin, IntakeTest):
    def post(self, path, body):
        """(status, headers, error-or-answer JSON) of a model request."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.mport, path),
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": "Bearer " + KEY,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, e.headers, json.loads(e.read().decode())

    def refused(self, body, code, param, chat=False, says=None):
        status, _, ans = self.post("/v1/chat/completions" if chat else "/v1/responses", body)
        self.assertEqual(status, 400, ans)
        err = ans["error"]
        self.assertEqual(err["type"], "invalid_request_error", err)
        self.assertEqual(err["code"], code, err)
        self.assertEqual(err["param"], param, err)
        if says:
            self.assertIn(says, err["message"])
        return err

    def accepted(self, body, chat=False):
        status, headers, ans = self.post("/v1/chat/completions" if chat else "/v1/responses",
                                         body)
        self.assertEqual(status, 200, ans)
        return headers

    def test_valid_requests_and_request_ids(self):
        self.start_mock()
        h1 = self.accepted(responses_body())
        h2 = self.accepted(chat_body(), chat=True)
        ids = {h1["x-request-id"], h2["x-request-id"]}
        _, h3, _ = self.post("/v1/responses", responses_body(bogus=1))
        ids.add(h3["x-request-id"])
        self.assertEqual(len(ids), 3, ids)
        for i in ids:
            self.assertTrue(i.startswith("req_"), i)

    def test_answer_does_not_escape_slashes(self):
        self.start_mock()
        item = {"type": "object", "additionalProperties": False,
                "required": ["email_id", "linkedin_url"],
                "properties": {"email_id": {"type": "string"},
                               "linkedin_url": {"type": ["string", "null"]}}}
        schema = {"type": "object", "additionalProperties": False, "required": ["results"],
                  "properties": {"results": {"type": "array", "items": item}}}
        user = ('<email id="m1">\nFrom: a@b.c\n\nCandidate: Ann Lee\n'
                'LinkedIn: https://www.linkedin.com/in/ann-lee\n</email>\n')
        body = responses_body(schema)
        body["input"] = [{"role": "user", "content": user}]
        status, _, ans = self.post("/v1/responses", body)
        self.assertEqual(status, 200, ans)
        text = [c["text"] for o in ans["output"] if o["type"] == "message"
                for c in o["content"]][0]
        self.assertIn('"https://www.linkedin.com/in/ann-lee"', text)
        self.assertNotIn("\\/", text)

    def test_schema_without_items_does_not_crash_the_mock(self):
        # results without an `items` schema and an email asking for an
        # invalid answer: once a crash of the mock (a missing object read)
        self.start_mock()
        schema = {"type": "object", "additionalProperties": False, "required": ["results"],
                  "properties": {"results": {"type": "array"}}}
        body = responses_body(schema)
        body["input"] = [{"role": "user",
                          "content": '<email id="m1">\nFrom: a@b.c\n\nMOCK_INVALID\n</email>\n'}]
        status, _, ans = self.post("/v1/responses", body)
        self.assertIn(status, (200, 400), ans)
        self.accepted(responses_body())  # still serving

    def test_parameters(self):
        self.start_mock()
        self.refused(responses_body(bogus=1), "unknown_parameter", "bogus",
                     says="Unknown parameter: 'bogus'.")
        # max_completion_tokens is Chat's; the Responses API does not know it
        self.refused(responses_body(max_completion_tokens=10), "unknown_parameter",
                     "max_completion_tokens")
        self.refused(chat_body(max_output_tokens=10), "unknown_parameter", "max_output_tokens",
                     chat=True)
        # reasoning models: sampling only at its default
        self.refused(responses_body(temperature=0.2), "unsupported_value", "temperature",
                     says="Only the default (1) value is supported.")
        self.refused(chat_body(top_p=0.5, model="o3-mini"), "unsupported_value", "top_p",
                     chat=True)
        self.accepted(responses_body(temperature=1))
        self.refused(chat_body(max_tokens=100), "unsupported_parameter", "max_tokens", chat=True,
                     says="Use 'max_completion_tokens' instead.")
        self.refused(chat_body(stop=["x"]), "unsupported_parameter", "stop", chat=True)
        # not a reasoning model: taken
        self.accepted(chat_body(temperature=0.2, max_tokens=100, model="gpt-4.1-mini"),
                      chat=True)

    def test_field_bounds(self):
        self.start_mock()
        self.accepted(responses_body(prompt_cache_key="k" * 64))
        err = self.refused(responses_body(prompt_cache_key="k" * 65), "string_above_max_length",
                           "prompt_cache_key")
        self.assertEqual(err["message"], "Invalid 'prompt_cache_key': string too long. Expected "
                         "a string with maximum length 64, but got a string with length 65 "
                         "instead.")
        self.refused(chat_body(safety_identifier="s" * 70), "string_above_max_length",
                     "safety_identifier", chat=True)
        self.refused(responses_body(max_output_tokens=15), "integer_below_min_value",
                     "max_output_tokens", says="Expected a value >= 16, but got 15")
        self.accepted(responses_body(max_output_tokens=16))
        b = responses_body()
        b["text"]["format"]["name"] = "email extractions"
        self.refused(b, "invalid_value", "text.format.name")
        b = chat_body()
        b["response_format"]["json_schema"]["name"] = "n" * 65
        self.refused(b, "string_above_max_length", "response_format.json_schema.name", chat=True)
        del b["response_format"]["json_schema"]["name"]
        self.refused(b, "missing_required_parameter", "response_format.json_schema.name",
                     chat=True)

    def schema_refused(self, schema, says, chat=False):
        body = chat_body(schema) if chat else responses_body(schema)
        err = self.refused(body, "invalid_json_schema",
                           "response_format" if chat else "text.format.schema", chat=chat)
        self.assertTrue(err["message"].startswith(
            "Invalid schema for response_format 'email_extractions': "), err["message"])
        self.assertIn(says, err["message"])

    def test_strict_schema_rules(self):
        self.start_mock()

        def edit(fn):
            s = copy.deepcopy(SCHEMA)
            fn(s["properties"]["results"]["items"])
            return s

        loc_ctx = "In context=('properties', 'results', 'items', 'properties', 'location', "
        self.schema_refused(
            edit(lambda i: i["properties"]["location"]["anyOf"][0].pop("additionalProperties")),
            loc_ctx + "'anyOf', '0'), 'additionalProperties' is required to be supplied and "
            "to be false.")
        self.schema_refused(edit(lambda i: i["required"].remove("score")),
                            "'required' is required to be supplied and to be an array "
                            "including every key in properties. Missing 'score'.", chat=True)
        self.schema_refused(edit(lambda i: i["required"].append("ghost")),
                            "Extra required key 'ghost' supplied.")
        # what the API refuses and gpt_batch once sent: a nullable object as a type union
        self.schema_refused(
            edit(lambda i: i["properties"].update(location={
                "type": ["object", "null"], "properties": {"city": {"type": "string"}},
                "required": ["city"], "additionalProperties": False})),
            "got 'object' in it. Use anyOf for a nullable object.")
        self.schema_refused(
            edit(lambda i: i["properties"].update(
                tags={"type": ["array", "null"], "items": {"type": "string"}}) or
                i["required"].append("tags")),
            "Use anyOf for a nullable array.")
        self.schema_refused(edit(lambda i: i["properties"]["name"].update(default=None)),
                            "'default' is not permitted.")
        self.schema_refused(edit(lambda i: i["properties"]["name"].update(format="uri")),
                            "'format' \"uri\" is not supported.")
        self.schema_refused(edit(lambda i: i["properties"]["name"].update(allOf=[])),
                            "'allOf' is not permitted.")
        self.schema_refused(edit(lambda i: i["properties"].update(x={"description": "no type"})
                                 or i["required"].append("x")),
                            "schema must have a 'type' key.")
        # the root is an object, never anyOf
        self.schema_refused({"anyOf": [SCHEMA]},
                            "schema must be a JSON Schema of 'type: \"object\"', got "
                            "'type: \"None\"'.")
        self.schema_refused({"type": "array", "items": SCHEMA}, "got 'type: \"array\"'")
        # limits: 10 levels of nesting, 5,000 properties, 1,000 enum values
        self.accepted(responses_body(nested(10)))
        self.schema_refused(nested(11), "11 levels of nesting exceeds limit of 10.")
        many = {"type": "object", "additionalProperties": False,
                "properties": {"p%d" % i: {"type": "integer"} for i in range(5001)}}
        many["required"] = list(many["properties"])
        self.schema_refused(many, "5001 object properties in total, which exceeds the limit "
                            "of 5000.")
        enums = edit(lambda i: i["properties"].update(
            e={"type": "string", "enum": ["v%d" % n for n in range(1001)]}) or
            i["required"].append("e"))
        self.schema_refused(enums, "1001 enum values in total")
        big = edit(lambda i: i["properties"].update(
            e={"type": "string", "enum": ["%060d" % n for n in range(251)]}) or
            i["required"].append("e"))
        self.schema_refused(big, "exceeds the limit of 15000 for enums of more than 250 values")

    def rate_limited(self):
        """Sends until a 429; its headers and error."""
        for _ in range(5):
            status, headers, ans = self.post("/v1/responses", responses_body())
            if status == 429:
                return headers, ans["error"]
        self.fail("no 429 from a mock allowing 1 request per minute")

    def test_429_openai_style_by_default(self):
        self.start_mock("--rpm", "1")
        headers, err = self.rate_limited()
        self.assertEqual(err["code"], "rate_limit_exceeded")
        self.assertEqual(err["type"], "requests")
        self.assertIn("on requests per min (RPM): Limit 1, Used 1, Requested 1. Please try "
                      "again in ", err["message"])
        self.assertIsNone(headers.get("retry-after"))
        self.assertIsNone(headers.get("retry-after-ms"))
        self.assertEqual(headers["x-ratelimit-remaining-requests"], "0")
        self.assertTrue(headers["x-ratelimit-reset-requests"].endswith("s"))
        self.assertIsNotNone(headers.get("x-request-id"))

    def test_429_azure_style(self):
        self.start_mock("--rpm", "1", "--retry-header", "azure")
        headers, err = self.rate_limited()
        self.assertEqual(err["code"], "rate_limit_exceeded")
        self.assertGreater(int(headers["retry-after-ms"]), 0)
        self.assertGreaterEqual(int(headers["retry-after"]), 1)


if __name__ == "__main__":
    unittest.main()
