"""Accuracy judges: verdict parsing, the reference judge, and an OpenAI-compatible endpoint on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from ifl.judge import OpenAIJudge, ReferenceJudge, judge_prompt, make_judge, parse_verdict


def test_parse_verdict():
    assert parse_verdict("Correct.") is True
    assert parse_verdict("incorrect") is False
    assert parse_verdict("The answer is INCORRECT because") is False
    assert parse_verdict("maybe") is None


def test_reference_judge_is_language_bound():
    judge = ReferenceJudge()
    assert judge(["q", "q", "q"], ["rot", "rot", "drei"], ["Rot.", "red", "Es sind drei."]) == [
        True,
        False,
        True,
    ]


def test_prompt_carries_question_truth_and_completion():
    text = judge_prompt("What colour?", "red", "rouge")
    assert (
        "Question: What colour?" in text
        and "Ground truth: red" in text
        and "Completion: rouge" in text
    )


class _Handler(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.seen.append({"auth": self.headers.get("Authorization"), "body": body})
        verdict = "correct" if "Completion: red" in body["messages"][0]["content"] else "incorrect"
        payload = json.dumps({"choices": [{"message": {"content": verdict}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_openai_judge_against_a_local_endpoint(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("JUDGE_KEY", "sekret")
        judge = make_judge(
            {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{server.server_port}/v1",
                "model": "grader",
                "api_key_env": "JUDGE_KEY",
            }
        )
        assert judge(["q", "q"], ["red", "red"], ["red", "blue"]) == [True, False]
        assert _Handler.seen[0]["auth"] == "Bearer sekret"
        assert _Handler.seen[0]["body"]["model"] == "grader"
    finally:
        server.shutdown()


def test_unreachable_endpoint_and_bad_kind():
    with pytest.raises(ValueError, match="unreachable"):
        OpenAIJudge("http://127.0.0.1:9", "m", timeout=2)._ask("x")
    with pytest.raises(ValueError, match="unknown judge kind 'gpt'"):
        make_judge({"kind": "gpt"})
