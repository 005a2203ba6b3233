# Remedies of the follow-up papers as variants of one base VLM (config `remedies:`):
# textual regularisation and task-instruction mixes are trained from the base's stage-1
# checkpoint, merges interpolate the base with its original LLM; every variant answers the
# evaluation subset, and the tables put fidelity (LID + DSL), LF, LF+ and accuracy side by side.
# This file holds the set-up and the rules both presets share (base replies, gold sheet, labels,
# tables, modality gap) and, for the organism, the rules that build, train, merge and run the
# variants; the paper preset's versions of those are in paper_remedies.smk.
import re
import sys

from ifl.remedies import base_entry as _remedy_base_entry
from ifl.remedies import spec_key as remedy_spec_key
from ifl.remedies import variant_dir as remedy_variant_dir
from ifl.remedies import variants as _remedy_variants

try:
    REMEDY_BASE = _remedy_base_entry(config)
    REMEDY_VARIANTS = {v["name"]: v for v in _remedy_variants(config)}
except ValueError as _err:
    sys.stderr.write(f"config error: {_err}\n")
    sys.exit(1)
REMEDY_DIR = f"{RUN}/remedies"
REMEDY_TRAINED = [n for n, v in REMEDY_VARIANTS.items() if v["kind"] == "trained"]
REMEDY_MERGED = [n for n, v in REMEDY_VARIANTS.items() if v["kind"] == "merged"]
REMEDY_MODEL = {n: remedy_variant_dir(RUN, v, REMEDY_BASE["name"]) for n, v in REMEDY_VARIANTS.items()}
REMEDY_SPEC = {n: remedy_spec_key(v) for n, v in REMEDY_VARIANTS.items()}
# Wildcard alternatives ("(?!)" never matches: no variant of that kind).
REMEDY_TRAINED_RE = "|".join(re.escape(n) for n in REMEDY_TRAINED) or "(?!)"
REMEDY_GENERATED_RE = "|".join(re.escape(n) for n in REMEDY_TRAINED + REMEDY_MERGED) or "(?!)"
REMEDY_MERGED_RE = "|".join(re.escape(n) for n in REMEDY_MERGED) or "(?!)"
REMEDY_TABLE = f"{RUN}/tables/remedies.csv"
REMEDY_GAP = f"{RUN}/tables/remedies_gap.csv"
# Replies per variant: one file on the organism; shards like the main generations in the paper
# preset (the base's are its main replies, cut to the evaluation subset, either way).
REMEDY_GENERATIONS = [
    path
    for name in REMEDY_VARIANTS
    for path in (
        [f"{REMEDY_DIR}/generations/{name}.parquet"]
        if name == "base" or PRESET == "organism"
        else [f"{REMEDY_DIR}/generations/{name}/shard-{s}.parquet" for s in SHARDS]
    )
]
# Gold labels: the organism's oracle annotates inside remedy_label; people annotate a second
# appendix-B sheet (remedy_gold_sample / remedy_gold_annotate) with `gold.annotator: sheet`.
REMEDY_SHEET = config["gold"]["annotator"] != "oracle"
REMEDY_ANNOTATED = {"annotated": f"{REMEDY_DIR}/gold/annotated.csv"} if REMEDY_SHEET else {}
REMEDY_GOLD_SHEET = config["remedies"].get("gold_sheet")
# Paper preset only (the organism's jobs keep the profile's defaults): the modality gap loads two
# VLMs on a GPU; the labels run GlotLID and the judge over every variant's replies for hours.
REMEDY_GAP_RES = (
    {"gpu": RES["gpu_generate"], "mem_mb": RES["mem_mb_generate"], "runtime": RES["runtime_generate"]}
    if PRESET == "paper"
    else {}
)
REMEDY_LABEL_RES = {"mem_mb": RES["mem_mb_generate"], "runtime": RES["runtime_generate"]} if PRESET == "paper" else {}


if PRESET == "organism":

    rule remedy_mix:
        input:
            corpus=f"{RUN}/data/corpus",
            instructions=f"{RUN}/data/instruct-{REMEDY_BASE['data']}.parquet",
        output:
            f"{REMEDY_DIR}/mixes/{{variant}}.parquet",
        wildcard_constraints:
            variant=REMEDY_TRAINED_RE,
        params:
            **params_of("seed", "languages", "remedies.languages", "organism.text_only_share", "organism.translation_error_rate"),
            spec=lambda w: REMEDY_SPEC[w.variant],
        log:
            f"{LOGS}/remedy_mix-{{variant}}.log",
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-mix --corpus {input.corpus}"
            " --instructions {input.instructions} --variant {wildcards.variant} --out {output} > {log} 2>&1"


    rule remedy_train:
        # Stage 2 of the base from its stage-1 checkpoint, on the variant's mix (same schedule and seed).
        input:
            corpus=f"{RUN}/data/corpus",
            stage1=f"{RUN}/models/stage1/{REMEDY_BASE['llm']}-{REMEDY_BASE['vision']}",
            mix=f"{REMEDY_DIR}/mixes/{{variant}}.parquet",
        output:
            directory(f"{REMEDY_DIR}/vlm/{{variant}}"),
        wildcard_constraints:
            variant=REMEDY_TRAINED_RE,
        params:
            **params_of("seed", "organism.stage2"),
            spec=lambda w: REMEDY_SPEC[w.variant],
        log:
            f"{LOGS}/remedy_train-{{variant}}.log",
        benchmark:
            f"{BENCH}/remedy_train-{{variant}}.tsv"
        resources:
            gpu=RES["gpu_train"],
            mem_mb=RES["mem_mb_train"],
            runtime=RES["runtime_train"],
        threads: config["threads"]
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-train --stage1 {input.stage1} --corpus {input.corpus}"
            " --mix {input.mix} --variant {wildcards.variant} --out {output} > {log} 2>&1"


    rule remedy_merge:
        # Shard by shard on disk: (1 - alpha) * fine-tuned LLM + alpha * original LLM.
        input:
            vlm=f"{RUN}/models/vlm/{REMEDY_BASE['name']}",
            llm=f"{RUN}/models/llm/{REMEDY_BASE['llm']}",
        output:
            directory(f"{REMEDY_DIR}/merged/{{variant}}"),
        wildcard_constraints:
            variant=REMEDY_MERGED_RE,
        params:
            **params_of(),
            alpha=lambda w: REMEDY_VARIANTS[w.variant]["alpha"],
        log:
            f"{LOGS}/remedy_merge-{{variant}}.log",
        benchmark:
            f"{BENCH}/remedy_merge-{{variant}}.tsv"
        resources:
            mem_mb=RES["mem_mb_train"],
            runtime=RES["runtime_train"],
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-merge --vlm {input.vlm} --llm {input.llm}"
            " --alpha {params.alpha} --out {output} > {log} 2>&1"


    rule remedy_generate:
        input:
            model=lambda w: REMEDY_MODEL[w.variant],
            tasks=f"{RUN}/data/tasks.parquet",
        output:
            f"{REMEDY_DIR}/generations/{{variant}}.parquet",
        wildcard_constraints:
            variant=REMEDY_GENERATED_RE,
        params:
            **params_of("seed", "generate", "languages", "remedies.eval"),
        log:
            f"{LOGS}/remedy_generate-{{variant}}.log",
        benchmark:
            f"{BENCH}/remedy_generate-{{variant}}.tsv"
        resources:
            gpu=RES["gpu_generate"],
            mem_mb=RES["mem_mb_generate"],
            runtime=RES["runtime_generate"],
        threads: config["threads"]
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-generate --model {input.model} --tasks {input.tasks}"
            " --name {wildcards.variant} --out {output} > {log} 2>&1"


rule remedy_base_generations:
    # The base answered every task in the main DAG already: keep its evaluation subset.
    input:
        generations=expand(f"{RUN}/generations/{REMEDY_BASE['name']}/shard-{{shard}}.parquet", shard=SHARDS),
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{REMEDY_DIR}/generations/base.parquet",
    params:
        **params_of("languages", "remedies.eval"),
    log:
        f"{LOGS}/remedy_base_generations.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-base --generations {input.generations}"
        " --tasks {input.tasks} --out {output} > {log} 2>&1"


rule remedy_gold_sample:
    # With `gold.annotator: sheet` (paper preset): appendix B's stratified sample of the remedies'
    # replies and its blank sheet, for people to annotate as the main gold sample.
    input:
        generations=REMEDY_GENERATIONS,
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        sample=f"{REMEDY_DIR}/gold/sample.parquet",
        sheet=f"{REMEDY_DIR}/gold/sheet.csv",
    params:
        **params_of("seed", "gold.multipliers", "remedies.gold_size"),
    log:
        f"{LOGS}/remedy_gold_sample.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-gold-sample --generations {input.generations}"
        " --tasks {input.tasks} --out {output.sample} --sheet {output.sheet} > {log} 2>&1"


rule remedy_gold_annotate:
    # The completed sheet at `remedies.gold_sheet`, validated; until it exists the job stops,
    # naming the sheet to fill. An edited sheet reruns the labels.
    input:
        sample=f"{REMEDY_DIR}/gold/sample.parquet",
        sheet=f"{REMEDY_DIR}/gold/sheet.csv",
        tasks=f"{RUN}/data/tasks.parquet",
        done=[REMEDY_GOLD_SHEET] if REMEDY_GOLD_SHEET and Path(REMEDY_GOLD_SHEET).is_file() else [],
    output:
        f"{REMEDY_DIR}/gold/annotated.csv",
    params:
        **params_of("gold.annotator"),
        gold_sheet=REMEDY_GOLD_SHEET,
    log:
        f"{LOGS}/remedy_gold_annotate.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-gold-annotate --sample {input.sample}"
        " --sheet {input.sheet} --tasks {input.tasks} --out {output} > {log} 2>&1"
        " || (tail -n 1 {log} >&2; exit 1)"


rule remedy_label:
    # LID and judge of every reply, gold labels (the oracle's or the annotated sheet) and
    # (organism) the oracle truth of every reply.
    input:
        **REMEDY_ANNOTATED,
        generations=REMEDY_GENERATIONS,
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{REMEDY_DIR}/labelled.parquet",
    params:
        **params_of("seed", "lid", "judge", "gold.annotator", "gold.multipliers", "remedies.gold_size"),
    log:
        f"{LOGS}/remedy_label.log",
    benchmark:
        f"{BENCH}/remedy_label.tsv"
    resources:
        **REMEDY_LABEL_RES,
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-label --generations {input.generations}"
        " --tasks {input.tasks} --out {output}"
        + (" --annotated {input.annotated}" if REMEDY_SHEET else "")
        + " > {log} 2>&1"


rule remedy_tables:
    input:
        f"{REMEDY_DIR}/labelled.parquet",
    output:
        REMEDY_TABLE,
    params:
        **params_of("seed", "dsl"),
        variants=" ".join(REMEDY_VARIANTS),
    log:
        f"{LOGS}/remedy_tables.log",
    benchmark:
        f"{BENCH}/remedy_tables.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-tables --labelled {input} --out {output} > {log} 2>&1"


rule remedy_gap:
    # LRM-LLaVA's modality-gap figure: mean projector output vs mean question embedding.
    input:
        models=[REMEDY_MODEL[n] for n in config["remedies"]["gap"]["variants"]],
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        REMEDY_GAP,
    params:
        **params_of("seed", "languages", "remedies.eval", "remedies.gap"),
        names=" ".join(config["remedies"]["gap"]["variants"]),
    log:
        f"{LOGS}/remedy_gap.log",
    benchmark:
        f"{BENCH}/remedy_gap.tsv"
    resources:
        **REMEDY_GAP_RES,
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-gap --models {input.models} --names {params.names}"
        " --tasks {input.tasks} --out {output} > {log} 2>&1"


rule remedies:
    # Everything of the remedies (rule `all` asks for it; the organism's book reads it in notebook 05).
    input:
        REMEDY_TABLE,
        REMEDY_GAP,
