"""The paper preset's design grid (workflow/rules/paper_train.smk): composed LLaVA-1.5s and the
recipe's two stages."""

from __future__ import annotations

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("paper-compose", ("--llm", REQ), ("--vision", REQ), ("--out", REQ))
def _compose(a, cfg):
    """A LLaVA-1.5 from a staged backbone and encoder with a fresh projector (Table 3's start)."""
    from ifl import paper
    from ifl.train.paper import compose

    compose(
        paper.staged(cfg, f"model:{a.llm}"),
        paper.staged(cfg, f"model:{a.vision}"),
        a.out,
        cfg["training"],
        seed=cfg["seed"],
    )


@command(
    "paper-train",
    ("--stage", {"choices": ["1", "2"], **REQ}),
    ("--model", REQ),
    ("--data", {"default": None}),
    ("--out", REQ),
)
def _train(a, cfg):
    """LLaVA stage 1 (projector, captions) or stage 2 (projector + LLM, instructions)."""
    from ifl import paper
    from ifl.train.paper import fit_stage

    part = "pretrain" if a.stage == "1" else "instruct"
    fit_stage(
        a.model,
        paper.read_training(cfg, part, a.data, check_images=True),
        a.out,
        cfg["training"],
        stage=int(a.stage),
        stage_name=f"stage{a.stage}",
        seed=cfg["seed"],
        device=from_config(cfg),
        threads=cfg["threads"],
    )
