"""The paper preset's generation (workflow/rules/paper_generate.smk; the remedies' replies in
paper_remedies.smk too)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ifl.cli.generate import SHARD_ARGS
from ifl.cli.registry import Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("paper-generate", *SHARD_ARGS, ("--remedies-eval", {"action": "store_true"}))
def _generate(a, cfg):
    """Replies of a released VLM (registry name) or a trained grid VLM or remedy variant
    (directory), in the checkpoint's own prompt format; ``--remedies-eval`` asks only the
    remedies' evaluation subset (``remedies.eval``)."""
    from ifl import generate, paper
    from ifl.models.registry import get, load_pretrained, make_prompter, resolve
    from ifl.remedies import eval_tasks

    device, resources = from_config(cfg), cfg["resources_dir"]
    target = a.model if Path(a.model).is_dir() else get(a.model)
    entry, _ = resolve(target, resources)
    model, processor = load_pretrained(target, device, resources=resources)
    tasks = pd.read_parquet(a.tasks)
    tasks = eval_tasks(tasks, cfg) if a.remedies_eval else tasks
    q = paper.generation_queries(tasks, make_prompter(entry, processor))
    generate.run(
        model,
        processor,
        generate.shard(q, a.shard, a.shards),
        a.out,
        model_name=a.name,
        **generate.settings(cfg),
    )
