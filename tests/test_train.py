"""Organism training: bit-identical reruns, batch encoding, the lr schedule and the loop's guards."""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from _organism_fixtures import IMAGE_SIZE, LANGUAGES, LLM_ARCH, N_IMAGE_TOKENS, Organism, organism
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, LlavaProcessor

from ifl import LANGUAGES as ALL
from ifl.data.organism import (
    render_scenes,
    sample_scenes,
    text_dialogues,
    visual_instructions,
    visual_items,
)
from ifl.models.prompts import IMAGE_TOKEN, followup, prompt, target
from ifl.models.tiny import train_tokenizer
from ifl.train.batches import LengthBatches, collate, encode, labelled_counts, lengths
from ifl.train.loop import cosine_lr, fit
from ifl.train.organism import (
    pixel_tensor,
    pretrain_induction,
    pretrain_llm,
    stage2,
    target_loss,
    thin_labels,
)

torch.set_num_threads(1)
CPU = torch.device("cpu")
SCHEDULE = {"steps": 3, "batch_size": 4, "lr": 1e-3}


@pytest.fixture(scope="session")
def org(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    return organism(tmp_path_factory)


@pytest.fixture(scope="module")
def tok(org: Organism):
    return AutoTokenizer.from_pretrained(org.tokenizer_dir)


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (a / "loss.csv").read_text() == (b / "loss.csv").read_text()


def _changed(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in a if not torch.equal(a[k], b[k])}


# --- determinism -------------------------------------------------------------------------------


COPY_TASK = {"steps": 3, "batch_size": 4, "lr": 1e-3, "length": 16, "min_span": 2, "max_span": 6}
DIALOGUES = {**SCHEDULE, "turns": 2, "answer_weight": 1.0, "lm_fraction": 0.5, "copy_weight": 0.5,
             "copy_batch": 2}  # fmt: skip


def test_induction_then_dialogues_are_bit_identical_for_a_seed(
    org: Organism, tmp_path: Path
) -> None:
    def induction(name: str, seed: int) -> Path:
        pretrain_induction(org.tokenizer_dir, LLM_ARCH, COPY_TASK, tmp_path / name, seed=seed,
                           device=CPU)  # fmt: skip
        return tmp_path / name

    a, other = induction("ia", 3), induction("iother", 4)
    _assert_same_checkpoint(a, induction("ib", 3))
    assert _changed(_weights(a), _weights(other))
    curve = pd.read_csv(a / "loss.csv")
    # the lookup probe is measured after the last step (and every 100)
    assert curve["lookup"].notna().tolist() == [False, False, True]

    def dialogues(name: str, seed: int) -> Path:
        pretrain_llm(a, org.scenes, dict.fromkeys(LANGUAGES, 1.0), DIALOGUES, COPY_TASK,
                     tmp_path / name, seed=seed, device=CPU)  # fmt: skip
        return tmp_path / name

    d = dialogues("da", 3)
    _assert_same_checkpoint(d, dialogues("db", 3))
    assert _changed(_weights(d), _weights(dialogues("dother", 4)))
    assert _changed(_weights(a), _weights(d))
    curve = pd.read_csv(d / "loss.csv")
    assert len(curve) == SCHEDULE["steps"] and np.isfinite(curve["loss"]).all()


def test_thin_labels_keep_the_answers_and_reweight_a_sample_of_the_rest() -> None:
    labels = torch.arange(4000).reshape(2, 2000)
    answer = torch.zeros(2, 2000, dtype=torch.bool)
    answer[:, -100:] = True
    batch = {"labels": labels, "answer": answer}
    thin = thin_labels(batch, 0.25, np.random.default_rng(0))
    kept = thin["labels"] != -100
    assert kept[answer].all()
    assert abs(float(kept[~answer].float().mean()) - 0.25) < 0.03
    assert (thin["weight"][answer] == 1).all() and (thin["weight"][~answer] == 4).all()
    assert thin_labels(batch, 1.0, np.random.default_rng(0)) is batch
    with pytest.raises(ValueError, match="lm_fraction must lie in .*got 0"):
        thin_labels(batch, 0, np.random.default_rng(0))


def test_answer_weight_adds_the_mean_over_the_answers(org: Organism, tok) -> None:
    from transformers import LlamaForCausalLM

    from ifl.models.tiny import build_llm

    model: LlamaForCausalLM = build_llm(tok, LLM_ARCH, 0).eval()
    enc = encode(tok, ["USER: a b ASSISTANT:"] * 2, [["red", followup("and?"), "no"], "blue"])
    batch = collate(enc, np.arange(2), tok.pad_token_id, loss_on_prompt=True)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), batch["labels"][:, 1:],
                             reduction="none", ignore_index=-100)  # fmt: skip
        labelled, on_answer = batch["labels"][:, 1:] != -100, batch["answer"][:, 1:]
        expected = ce[labelled].mean() + 2.0 * ce[on_answer].mean()
        ours = target_loss(model, batch, answer_weight=2.0)
    assert torch.allclose(ours, expected, rtol=1e-5)
    # the replies are answers; the follow-up question between them is labelled but is not
    n_tokens = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in ("red", "no")]
    assert int(on_answer[0].sum()) == sum(n_tokens) < int(labelled[0].sum())


def test_stage2_is_bit_identical_for_a_seed(org: Organism, tmp_path: Path) -> None:
    pixels = pixel_tensor(render_scenes(org.scenes, 32), 32)
    items = visual_items(org.scenes, 16, seed=5)
    instructions = visual_instructions(items, "de", error_rate=0.05, seed=5)

    def train(name: str, seed: int) -> Path:
        stage2(org.vlm_dir, pixels, instructions, org.scenes, 0.25, SCHEDULE, tmp_path / name,
               seed=seed, device=CPU)  # fmt: skip
        return tmp_path / name

    a, b, other = train("a", 3), train("b", 3), train("other", 4)
    _assert_same_checkpoint(a, b)
    assert _changed(_weights(a), _weights(other))
    # projector and LLM train; the vision tower stays frozen
    changed = _changed(_weights(org.vlm_dir), _weights(a))
    assert changed and not any("vision_tower" in k for k in changed)
    assert any("multi_modal_projector" in k for k in changed)
    assert any("language_model" in k for k in changed)
    assert LlavaProcessor.from_pretrained(a).tokenizer.get_vocab() == (
        LlavaProcessor.from_pretrained(org.vlm_dir).tokenizer.get_vocab()
    )


# --- encode / collate --------------------------------------------------------------------------


def test_labels_cover_the_target_only(tok) -> None:
    prompts = [prompt("What colour is the circle?", image=False, description="A red circle."),
               prompt("Hi", image=False)]  # fmt: skip
    targets = [target("red"), target("a much longer answer with several words")]
    enc = encode(tok, prompts, targets)
    batch = collate(enc, np.array([0, 1]), tok.pad_token_id)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape
    for j in range(2):
        n, start = len(enc.ids[j]), int(enc.target_start[j])
        assert ids[j, 0] == tok.bos_token_id and mask[j, :n].all() and not mask[j, n:].any()
        assert (labels[j, :start] == -100).all() and (labels[j, n:] == -100).all()  # prompt, pad
        assert torch.equal(labels[j, start:n], ids[j, start:n])
        assert (ids[j, n:] == tok.pad_token_id).all()  # right padding
        assert tok.decode(labels[j, start:n]) == targets[j]
    # the short example is padded, so the padding case was exercised
    assert len(enc.ids[0]) != len(enc.ids[1])


def test_loss_on_prompt_covers_all_but_bos(tok) -> None:
    enc = encode(tok, [prompt("Hi", image=False)], [target("yes")])
    batch = collate(enc, np.array([0]), tok.pad_token_id, loss_on_prompt=True)
    assert batch["labels"][0, 0] == -100
    assert torch.equal(batch["labels"][0, 1:], batch["input_ids"][0, 1:])


def test_image_token_is_expanded_as_the_processor_does(org: Organism, tok) -> None:
    p = prompt("How many circles are there?", image=True)
    enc = encode(tok, [p, p], [target("two"), target("three")], image_tokens=N_IMAGE_TOKENS,
                 image=[4, -1])  # fmt: skip
    image_id = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert int((enc.ids[0] == image_id).sum()) == N_IMAGE_TOKENS
    assert enc.image.tolist() == [4, -1]
    # training sees exactly the prompt ids that inference feeds the model
    processor = LlavaProcessor.from_pretrained(org.vlm_dir)
    image = Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8))
    at_inference = processor(text=[p], images=[image], return_tensors="pt")["input_ids"][0]
    assert enc.ids[0][: enc.target_start[0]].tolist() == at_inference.tolist()


def test_encode_truncates_and_checks_lengths(tok) -> None:
    enc = encode(tok, [prompt("Describe this image in detail.", image=False)], [target("x")],
                 max_len=5)  # fmt: skip
    assert len(enc.ids[0]) == 5 and enc.target_start[0] == 5
    assert (collate(enc, np.array([0]), tok.pad_token_id)["labels"] == -100).all()
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        encode(tok, ["a", "b"], ["c"])


# --- the lr schedule and the loop --------------------------------------------------------------


def test_length_batches_keep_the_sampling_and_cut_padding() -> None:
    rng_lengths = np.random.default_rng(1).integers(10, 200, size=500)
    draw = LengthBatches(rng_lengths, batch_size=8, pool=16)
    rng = np.random.default_rng(0)
    batches = [draw(rng) for _ in range(2000)]
    assert all(len(b) == 8 and b.min() >= 0 and b.max() < 500 for b in batches)
    # Rows are drawn uniformly with replacement, as independent batches would draw them.
    counts = np.bincount(np.concatenate(batches), minlength=500)
    expected = 2000 * 8 / 500
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 500 + 4 * math.sqrt(2 * 500)

    # Padding to the longest row wastes far less than on unsorted batches.
    def waste(bs: list[np.ndarray]) -> float:
        return float(np.mean([1 - rng_lengths[b].mean() / rng_lengths[b].max() for b in bs]))

    unsorted = [np.random.default_rng(2).integers(500, size=8) for _ in range(200)]
    assert waste(batches) < 0.1 < 0.3 < waste(unsorted)
    again = LengthBatches(rng_lengths, batch_size=8, pool=16)
    rng = np.random.default_rng(0)
    assert all(np.array_equal(again(rng), b) for b in batches[:50])


def test_length_batches_norm_keeps_the_token_weighting_of_unsorted_batches() -> None:
    # Over one pool, the batches' labelled tokens divided by ``norm`` sum to the pool's batch
    # count: every token weighs 1 / (mean labelled tokens per batch), whatever batch it lands in.
    n = np.random.default_rng(3).integers(10, 200, size=300)
    labelled = n // 3
    draw = LengthBatches(n, batch_size=8, labelled=labelled, pool=16)
    rng = np.random.default_rng(0)
    pool = [draw(rng) for _ in range(16)]
    assert sum(labelled[b].sum() / draw.norm for b in pool) == pytest.approx(16)


def test_labelled_counts_match_collate(tok) -> None:
    enc = encode(
        tok, ["USER: hi ASSISTANT:", "USER: a longer prompt ASSISTANT:"], [" red</s>", " no</s>"]
    )
    for on_prompt in (False, True):
        labels = collate(enc, np.arange(2), tok.pad_token_id, loss_on_prompt=on_prompt)["labels"]
        counted = (labels[:, 1:] != -100).sum(1).tolist()
        assert labelled_counts(enc, loss_on_prompt=on_prompt).tolist() == counted


def test_length_batches_reject_empty_input() -> None:
    with pytest.raises(ValueError, match="0 rows"):
        LengthBatches([], batch_size=4)


def test_target_loss_equals_the_models_own_loss(org: Organism, tok) -> None:
    from transformers import LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(org.vlm_dir).eval()
    scenes = org.scenes[:3]
    enc = encode(
        tok,
        [prompt("What colour is it?", image=True)] * 3,
        [target("red"), target("a small blue square"), target("no")],
        image_tokens=N_IMAGE_TOKENS,
    )
    pixels = pixel_tensor(render_scenes(scenes, IMAGE_SIZE), IMAGE_SIZE)
    for on_prompt in (False, True):
        batch = collate(enc, np.arange(3), tok.pad_token_id, loss_on_prompt=on_prompt)
        with torch.no_grad():
            ours = target_loss(model, batch, pixel_values=pixels)
            theirs = model(**batch, pixel_values=pixels).loss
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
        count = int((batch["labels"][:, 1:] != -100).sum())
        with torch.no_grad():
            summed = target_loss(model, batch, norm=2.0, pixel_values=pixels)
        assert torch.allclose(summed, theirs * count / 2.0, rtol=1e-5, atol=1e-6)
    assert lengths(enc).tolist() == [len(i) for i in enc.ids]


def test_cosine_lr_warms_up_then_decays_to_a_tenth() -> None:
    steps, peak, warmup = 200, 2.0, 0.05
    n_warm = int(steps * warmup)
    lrs = np.array([cosine_lr(s, steps, peak, warmup) for s in range(steps + 1)])
    np.testing.assert_allclose(lrs[:n_warm], peak * np.arange(1, n_warm + 1) / n_warm)
    assert lrs[n_warm - 1] == pytest.approx(peak) and lrs[n_warm] == pytest.approx(peak)
    assert (np.diff(lrs[n_warm:]) <= 0).all()
    mid = n_warm + (steps - n_warm) // 2  # cos(pi/2) = 0: halfway between peak and floor
    assert lrs[mid] == pytest.approx(peak * (0.1 + 0.45))
    assert lrs[steps] == pytest.approx(0.1 * peak)
    assert lrs.min() >= 0.1 * peak - 1e-12
    assert cosine_lr(0, 3, 1.0) == pytest.approx(1.0)  # at least one warm-up step


def test_fit_minimises_a_quadratic_reproducibly() -> None:
    def run() -> tuple[torch.Tensor, pd.DataFrame]:
        w = torch.nn.Parameter(torch.zeros(3))
        truth = torch.tensor([1.0, -2.0, 0.5])

        def loss_fn(rng: np.random.Generator) -> torch.Tensor:
            noise = torch.from_numpy(rng.normal(0, 0.01, 3).astype(np.float32))
            return ((w - truth - noise) ** 2).sum()

        curve = fit([w], loss_fn, steps=300, lr=0.05, seed=0, desc="quadratic")
        return w.detach(), curve

    (w1, c1), (w2, c2) = run(), run()
    torch.testing.assert_close(w1, torch.tensor([1.0, -2.0, 0.5]), atol=0.05, rtol=0)
    assert torch.equal(w1, w2)
    pd.testing.assert_frame_equal(c1, c2)
    assert list(c1.columns) == ["stage", "step", "loss"] and len(c1) == 300
    assert c1["loss"].iloc[-1] < c1["loss"].iloc[0] / 100


def test_fit_probes_every_n_steps_and_after_the_last() -> None:
    w = torch.nn.Parameter(torch.zeros(1))
    calls = []

    def probe() -> float:
        calls.append(float(w.detach()))
        return float(len(calls))

    probes = {"n": probe, "pair": lambda: {"a": 1.0, "b": 2.0}}
    curve = fit([w], lambda rng: ((w - 1) ** 2).sum(), steps=7, lr=0.1, seed=0, desc="probe",
                probes=probes, probe_every=3)  # fmt: skip
    assert list(curve.columns) == ["stage", "step", "loss", "n", "pair.a", "pair.b"]
    assert curve["n"].tolist()[2::3] == [1.0, 2.0] and curve["n"].iloc[-1] == 3.0
    assert curve["n"].notna().tolist() == [False, False, True, False, False, True, True]
    assert (curve["pair.b"].dropna() == 2.0).all() and len(calls) == 3


def test_fit_raises_on_a_nan_loss() -> None:
    w = torch.nn.Parameter(torch.ones(2))
    calls = []

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        calls.append(1)
        return (w**2).sum() * (math.nan if len(calls) == 3 else 1.0)

    with pytest.raises(FloatingPointError, match="nan-test.*nan.*step 2"):
        fit([w], loss_fn, steps=10, lr=0.1, seed=0, desc="nan-test")
    assert len(calls) == 3


def test_fit_needs_a_trainable_parameter() -> None:
    frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
    with pytest.raises(ValueError, match="frozen-test"):
        fit([frozen], lambda rng: frozen.sum(), steps=1, lr=0.1, seed=0, desc="frozen-test")


def test_tokenizer_keeps_words_whole_in_every_script() -> None:
    """Pre-tokens are words with their marks: a Hindi or Bengali word is never cut at a vowel
    sign (GPT-2's regex does that), so a frequent word becomes one token; decoding is exact."""
    dialogues = text_dialogues(sample_scenes(200, 0), dict.fromkeys(ALL, 1.0), 2000, 0)
    lines = (dialogues["prompt"] + dialogues["target"]).tolist()
    tok = train_tokenizer(lines, 4000)
    for line in lines[:200]:
        assert tok.decode(tok(line, add_special_tokens=False)["input_ids"]) == line
    for lang in ("hi", "bn"):
        answers = dialogues.loc[dialogues["language"] == lang, "target"].str.removesuffix("</s>")
        words = answers.str.split().explode().value_counts().index
        # the most frequent answer word (no punctuation) with a vowel sign (a combining mark)
        cats = [(w, [unicodedata.category(c) for c in w]) for w in words]
        word = next(w for w, c in cats if {x[0] for x in c} <= {"L", "M"} and {"Mn", "Mc"} & set(c))
        assert len(tok(" " + word, add_special_tokens=False)["input_ids"]) == 1, (lang, word)


def test_unspaced_pieces_let_the_tokenizer_see_chinese_and_thai_words() -> None:
    """Without the pieces, BPE merges a whole Chinese clause (object, size, colour, place) into
    one token; with them a description is a sequence of word tokens, and the colour word of the
    description is a token of its own that a question can point at."""
    from ifl.world.items import describe
    from ifl.world.lexicon import unspaced_pieces

    pieces = unspaced_pieces()
    assert "红色" in pieces and "红色的" not in pieces  # a concatenation of pieces is left out
    lengths = [len(p) for p in pieces]
    assert len(pieces) == len(set(pieces)) and lengths == sorted(lengths, reverse=True)
    scenes = sample_scenes(300, 0)
    dialogues = text_dialogues(scenes, {"en": 1.0, "zh": 1.0, "th": 1.0}, 3000, 0)
    lines = (dialogues["prompt"] + dialogues["target"]).tolist()
    plain, split = train_tokenizer(lines, 2000), train_tokenizer(lines, 2000, pieces=pieces)
    for lang in ("zh", "th"):
        text = describe(scenes[0], lang)
        n_plain = len(plain(text, add_special_tokens=False)["input_ids"])
        ids = split(text, add_special_tokens=False)["input_ids"]
        assert split.decode(ids) == text
        assert len(ids) > 2 * n_plain, (lang, len(ids), n_plain)
    description = describe(scenes[0], "zh")
    colour = next(w for w in ("红色", "蓝色", "绿色", "黄色") if w in description)
    (token,) = split.tokenize(colour)
    assert token in split.tokenize(description)


def test_dialogues_with_turns_alternate_replies_and_follow_ups() -> None:
    d = text_dialogues(sample_scenes(20, 0), {"de": 1.0}, 10, 0, turns=3)
    for segments in d["target"]:
        assert len(segments) == 5
        assert all(s.endswith("</s>") for s in segments[::2])
        assert all(s.startswith("USER: ") and s.endswith("ASSISTANT:") for s in segments[1::2])
    with pytest.raises(ValueError, match="turns=0"):
        text_dialogues(sample_scenes(2, 0), {"de": 1.0}, 1, 0, turns=0)
