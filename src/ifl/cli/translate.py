"""The organism's translation (workflow/rules/translate.smk): stage-2 instructions through the
toy translator."""

from __future__ import annotations

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command("translate", ("--corpus", REQ), ("--lang", REQ), ("--out", REQ))
def _translate(a, cfg):
    """The corpus's stage-2 items rendered in ``--lang`` with the translator's word errors."""
    from ifl.data.corpus import read_visual_items
    from ifl.data.organism import visual_instructions
    from ifl.io import write_parquet

    df = visual_instructions(
        read_visual_items(a.corpus),
        a.lang,
        error_rate=cfg["organism"]["translation_error_rate"],
        seed=cfg["seed"] + 4,
    )
    write_parquet(df, a.out)
