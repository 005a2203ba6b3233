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


def test_hf_judge_runs_a_local_causal_lm(tmp_path):
    """The local Hugging Face judge end to end on a tiny random model saved to disk."""
    from ifl.judge import HFJudge
    from ifl.models.tiny import build_llm, train_tokenizer

    tok = train_tokenizer(["correct incorrect Question Ground truth Completion red blue"] * 50, 300)
    # A plain string-content template, as instruct models ship.
    tok.chat_template = "{% for m in messages %}USER: {{ m['content'] }}{% endfor %} ASSISTANT:"
    model = build_llm(tok, {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 32}, seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    judge = make_judge({"kind": "hf", "model": str(tmp_path)})
    assert isinstance(judge, HFJudge)
    # A random model says anything: one parsed verdict (or None) per item, deterministically.
    first = judge(["What colour?", "What colour?"], ["red", "red"], ["red", "blue"])
    assert len(first) == 2 and all(v in (True, False, None) for v in first)
    assert judge(["What colour?"], ["red"], ["red"]) == first[:1]
    judge.tok.chat_template = None  # models without a template get the bare prompt
    assert len(judge(["q"], ["red"], ["red"])) == 1
    replies = iter([" correct.", "Incorrect", "no idea"])
    judge._reply = lambda prompt: next(replies)
    assert judge(["q"] * 3, ["red"] * 3, ["red", "blue", "x"]) == [True, False, None]
