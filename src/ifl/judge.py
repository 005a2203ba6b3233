"""Accuracy judges: is a completion a correct answer to the question, given the ground truth?

The paper asks GPT-4o with the question, the ground truth and the completion, and debiases the
verdicts with DSL against expert labels. Three interchangeable judges: the organism's
reference judge (string match), a local Hugging Face instruct model, and any
OpenAI-compatible chat endpoint (base URL and model from the config, key from the environment).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

JUDGE_PROMPT = (
    "You are grading an answer to a question.\n"
    "Question: {question}\n"
    "Ground truth: {reference}\n"
    "Completion: {completion}\n"
    "Is the completion a correct answer to the question, given the ground truth? The completion "
    "may be in any language. Reply with exactly one word: correct or incorrect."
)
_VERDICT = re.compile(r"\b(incorrect|correct)\b", re.IGNORECASE)


class Judge(Protocol):
    """Maps (question, reference, completion) triples to verdicts (None when unparseable)."""

    def __call__(
        self, questions: Sequence[str], references: Sequence[str], completions: Sequence[str]
    ) -> list[bool | None]: ...


def judge_prompt(question: str, reference: str, completion: str) -> str:
    """The grading prompt, as in the paper: question, ground truth, completion."""
    return JUDGE_PROMPT.format(question=question, reference=reference, completion=completion)


def parse_verdict(text: str) -> bool | None:
    """``correct`` -> True, ``incorrect`` -> False, anything else -> None."""
    m = _VERDICT.search(text or "")
    return None if m is None else m.group(1).lower() == "correct"


def _normalise(text: str) -> str:
    return re.sub(r"[\s\.,!?;:。、！？]+", " ", str(text).lower()).strip()


class ReferenceJudge:
    """The organism's cheap judge: the reference answer appears in the completion.

    It only knows the reference in the query language, so a right answer in the wrong language
    is judged wrong: a biased proxy, as an LLM judge is, which the oracle's labels debias.
    """

    def __call__(self, questions, references, completions):
        return [
            bool(_normalise(r)) and _normalise(r) in _normalise(c)
            for r, c in zip(references, completions, strict=True)
        ]


class OpenAIJudge:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (vLLM, TGI, OpenAI, ...)."""

    def __init__(
        self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0
    ):
        if not base_url:
            raise ValueError("judge.base_url is empty")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.timeout = model, timeout
        self.key = os.environ.get(api_key_env, "")

    def _ask(self, prompt: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "messages": [{"role": "user", "content": prompt}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = json.loads(resp.read())
        except urllib.error.URLError as exc:
            raise ValueError(f"judge endpoint {self.url!r} unreachable: {exc}") from exc
        return payload["choices"][0]["message"]["content"]

    def __call__(self, questions, references, completions):
        return [
            parse_verdict(self._ask(judge_prompt(q, r, c)))
            for q, r, c in zip(questions, references, completions, strict=True)
        ]


class HFJudge:
    """A local Hugging Face instruct model, prompted through its chat template, greedy."""

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        max_new_tokens: int = 4,
        trust_remote_code: bool = False,
    ):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.model = (
            AutoModelForCausalLM.from_pretrained(model, trust_remote_code=trust_remote_code)
            .to(device)
            .eval()
        )
        self.max_new_tokens = max_new_tokens

    def _reply(self, prompt: str) -> str:
        """The model's greedy continuation of the grading prompt."""
        import torch

        messages = [{"role": "user", "content": prompt}]
        if self.tok.chat_template:
            ids = self.tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt"
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        else:
            ids = self.tok(prompt, return_tensors="pt")["input_ids"]
        ids = ids.to(self.model.device)
        with torch.inference_mode():
            gen = self.model.generate(
                ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id,
            )
        return self.tok.decode(gen[0, ids.shape[1] :], skip_special_tokens=True)

    def __call__(self, questions, references, completions):
        return [
            parse_verdict(self._reply(judge_prompt(q, r, c)))
            for q, r, c in zip(questions, references, completions, strict=True)
        ]


def make_judge(cfg: Mapping[str, Any]) -> Judge:
    """The judge named by the config's ``judge`` section."""
    kind = cfg.get("kind", "reference")
    if kind == "reference":
        return ReferenceJudge()
    if kind == "openai":
        return OpenAIJudge(
            cfg.get("base_url", ""), cfg.get("model", ""), cfg.get("api_key_env", "OPENAI_API_KEY")
        )
    if kind == "hf":
        return HFJudge(cfg["model"], trust_remote_code=cfg.get("trust_remote_code", False))
    raise ValueError(f"unknown judge kind {kind!r}; allowed: reference, hf, openai")
