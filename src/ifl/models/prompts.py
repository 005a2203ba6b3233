"""Prompt formats: one place for how a question becomes a model input.

The organism uses LLaVA-1.5's format, ``USER: <image>\\n{question} ASSISTANT:``; in the text
condition the image is replaced by the scene's description in the query language.
"""

from __future__ import annotations

IMAGE_TOKEN = "<image>"

# Jinja chat template saved with the tokenizer and processor: the same string as `prompt`.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %} {% else %}ASSISTANT: "
    "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def prompt(question: str, *, image: bool, description: str | None = None) -> str:
    """The user turn and the assistant cue for one query.

    ``image=True`` gives the image condition; otherwise ``description`` stands in for the image
    (the text condition) or, when None, the question stands alone.
    """
    if image:
        return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT:"
    if description:
        return f"USER: {description}\n{question} ASSISTANT:"
    return f"USER: {question} ASSISTANT:"


def render(question: str, image: bool, description: str | None) -> str:
    """:func:`prompt` as a prompter ``(question, image, description) -> prompt`` (the shape of
    :func:`ifl.models.registry.make_prompter`'s): the organism's format."""
    return prompt(question, image=image, description=description)


def followup(question: str) -> str:
    """A later user turn of a dialogue (the image or description came with the first)."""
    return f"USER: {question} ASSISTANT:"


def target(answer: str, eos: str = "</s>") -> str:
    """The assistant's reply as trained: a leading space, the answer, end of sequence."""
    return f" {answer}{eos}"
