"""Analysis (workflow/rules/analyse.smk): fidelity, the DSL estimates, the organism's report,
summary.json and the notebooks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("fidelity", ("--measured", REQ), ("--out", REQ))
def _fidelity(a, cfg):
    """Fidelity (LID proxy) per model, benchmark, language and condition."""
    from ifl.io import write_csv
    from ifl.stats.effects import fidelity_table

    write_csv(fidelity_table(pd.read_parquet(a.measured), outcome="fidelity_proxy"), a.out)


@command("prevalence", ("--labelled", REQ), ("--out-dir", REQ))
def _prevalence(a, cfg):
    """DSL-debiased IFL and fidelity per cell, and the design regression of Table 4."""
    from ifl.config import vlm_name
    from ifl.io import write_csv
    from ifl.stats.prevalence import prevalence_tables

    d = cfg["dsl"]
    tables = prevalence_tables(
        pd.read_parquet(a.labelled),
        {vlm_name(e): e for e in cfg["grid"]},
        folds=d["folds"],
        splits=d["splits"],
        learner=d["learner"],
        seed=cfg["seed"],
        debias=cfg["gold"].get("enabled", True),
    )
    for name, table in tables.items():
        write_csv(table, Path(a.out_dir) / name)


@command("dsl-coverage", ("--labelled", REQ), ("--out", REQ))
def _dsl_coverage(a, cfg):
    """DSL's IFL intervals per cell for fresh gold samples drawn from the run's replies, checked
    against the oracle's truth (organism only: the oracle knows every reply)."""
    from ifl.io import write_csv
    from ifl.stats.coverage import redrawn_intervals

    d, check = cfg["dsl"], cfg["dsl_coverage"]
    intervals = redrawn_intervals(
        pd.read_parquet(a.labelled),
        sizes=check["gold_sizes"],
        draws=check["draws"],
        seed=cfg["seed"],
        multipliers=cfg["gold"]["multipliers"],
        folds=d["folds"],
        splits=d["splits"],
        learner=d["learner"],
    )
    write_csv(intervals, a.out)


@command(
    "organism-report",
    ("--tasks", REQ),
    ("--labelled", REQ),
    ("--induction", REQ),
    ("--base", REQ),
    ("--llms", {"nargs": "+", **REQ}),
    ("--visions", {"nargs": "+", **REQ}),
    ("--corpus", REQ),
    ("--checkpoints", {"nargs": "+", **REQ}),
    ("--out-dir", REQ),
)
def _organism_report(a, cfg):
    """The organism's quality checks: LID of its languages, the LMs' reading and text replies,
    the VLMs' fidelity and accuracy, the vision probes and every loss curve."""
    from ifl import lid
    from ifl.config import vlm_name
    from ifl.data.corpus import read_images, read_scenes
    from ifl.io import write_csv
    from ifl.organism_report import (
        accuracy_by_kind,
        accuracy_by_language,
        lid_rates,
        llm_key_table,
        llm_lookup,
        llm_text_replies,
        llm_text_table,
        loss_curves,
        reply_languages,
        vision_probe,
        vlm_accuracy,
        vlm_fidelity,
    )
    from ifl.world.tasks import text_checks

    org, out, device = cfg["organism"], Path(a.out_dir), from_config(cfg)
    tasks = pd.read_parquet(a.tasks)
    identifier = lid.from_config(cfg)
    rates = lid_rates(
        lambda texts: [lid.NAME_TO_ISO.get(n) for n in identifier.languages(texts)],
        cfg["languages"],
        seed=cfg["seed"],
    )
    write_csv(rates, out / "organism_lid.csv")
    # Each LM is checked in the languages it was pretrained on, on items the tasks do not hold.
    mixes = {Path(d).name: cfg["backbones"][Path(d).name]["mix"] for d in a.llms}
    mixes[Path(a.base).name] = org["base_llm"]["mix"]
    languages = sorted({lang for mix in mixes.values() for lang in mix})
    checks = text_checks(languages, org["text_check_per_kind"], seed=cfg["seed"] + 1000)
    replies = [
        llm_text_replies(
            d,
            checks[checks["language"].isin(mixes[Path(d).name])],
            backbone=Path(d).name,
            device=device,
        )
        for d in [a.base, *a.llms]
    ]
    replies = pd.concat(replies, ignore_index=True)
    write_csv(llm_text_table(replies), out / "organism_llm_text.csv")
    write_csv(llm_key_table(replies), out / "organism_llm_keys.csv")
    write_csv(llm_lookup([a.induction, a.base, *a.llms]), out / "organism_llm_lookup.csv")
    labelled = pd.read_parquet(a.labelled)
    write_csv(vlm_fidelity(labelled), out / "organism_vlm_fidelity.csv")
    write_csv(vlm_accuracy(labelled), out / "organism_accuracy.csv")
    write_csv(accuracy_by_kind(labelled, tasks), out / "organism_accuracy_kind.csv")
    data_language = {vlm_name(e): e["data"] for e in cfg["grid"]}
    write_csv(accuracy_by_language(labelled, data_language), out / "organism_accuracy_language.csv")
    write_csv(reply_languages(labelled), out / "organism_reply_language.csv")
    images, scenes = read_images(a.corpus), read_scenes(a.corpus)
    probes = [vision_probe(d, images, scenes, seed=cfg["seed"]) for d in a.visions]
    write_csv(pd.concat(probes, ignore_index=True), out / "organism_probe.csv")
    write_csv(loss_curves(a.checkpoints), out / "organism_loss.csv")


@command(
    "summary",
    ("--fidelity", REQ),
    ("--ifl", REQ),
    ("--organism-dir", {"default": None}),
    ("--bench-dir", {"default": None}),
    ("--steering", {"default": None}),
    ("--remedies", {"default": None}),
    ("--audit", {"default": None}),
    ("--out", REQ),
)
def _summary(a, cfg):
    """summary.json: the headline figures of every chapter the run has."""
    from ifl.io import write_json
    from ifl.summary import fidelity_summary, organism_summary, prevalence_summary

    summary = {
        "run_name": cfg["run_name"],
        "fidelity": fidelity_summary(pd.read_csv(a.fidelity)),
        "prevalence": prevalence_summary(pd.read_csv(a.ifl)),
    }
    if a.organism_dir:
        summary["organism"] = organism_summary(Path(a.organism_dir), a.bench_dir)
    if a.steering:
        from ifl.steering.tables import steering_summary

        summary["steering"] = steering_summary(pd.read_csv(a.steering))
    if a.remedies:
        from ifl.remedies import remedies_summary

        summary["remedies"] = remedies_summary(pd.read_csv(a.remedies))
    if a.audit:
        from ifl.audit.report import audit_summary

        summary["beyond_llava"] = audit_summary(pd.read_csv(a.audit))
    write_json(summary, a.out)


@command(
    "notebook",
    ("input", {}),
    ("output", {}),
    ("-p", {"nargs": 2, "action": "append", "default": [], "metavar": ("NAME", "VALUE")}),
)
def _notebook(a, cfg):
    """A notebook executed with papermill (``-p NAME VALUE`` as papermill's, values read as YAML
    scalars), written atomically: a failing notebook never replaces a good one."""
    import yaml

    from ifl.notebook import execute

    execute(a.input, a.output, {name: yaml.safe_load(value) for name, value in a.p})
