"""The organism's generation (workflow/rules/generate.smk): one shard of replies."""

from __future__ import annotations

import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()
#: The arguments of a generation job: model, tasks, which shard of how many, name, output.
SHARD_ARGS = (
    ("--model", REQ),
    ("--tasks", REQ),
    ("--shard", {"type": int, **REQ}),
    ("--shards", {"type": int, **REQ}),
    ("--name", REQ),
    ("--out", REQ),
)


@command("generate", *SHARD_ARGS)
def _generate(a, cfg):
    """One shard of greedy replies of a VLM to every task in both conditions."""
    from ifl import generate

    model, processor = generate.load_vlm(a.model, from_config(cfg))
    q = generate.shard(generate.queries(pd.read_parquet(a.tasks)), a.shard, a.shards)
    generate.run(
        model,
        processor,
        q,
        a.out,
        model_name=a.name,
        **generate.settings(cfg),
    )
