# Remedies of the follow-up papers as variants of one base VLM (config `remedies:`):
# textual regularisation and task-instruction mixes are trained from the base's stage-1
# checkpoint, merges interpolate the base with its original LLM; every variant answers the
# evaluation subset, and the tables put fidelity (LID + DSL), LF, LF+ and accuracy side by side.
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


rule remedy_label:
    # LID, judge, the oracle-annotated gold sample and (organism) the oracle truth of every reply.
    input:
        generations=expand(f"{REMEDY_DIR}/generations/{{variant}}.parquet", variant=list(REMEDY_VARIANTS)),
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{REMEDY_DIR}/labelled.parquet",
    params:
        **params_of("seed", "lid", "judge", "gold.annotator", "gold.multipliers", "remedies.gold_size"),
    log:
        f"{LOGS}/remedy_label.log",
    benchmark:
        f"{BENCH}/remedy_label.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-label --generations {input.generations}"
        " --tasks {input.tasks} --out {output} > {log} 2>&1"


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
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-gap --models {input.models} --names {params.names}"
        " --tasks {input.tasks} --out {output} > {log} 2>&1"


rule remedies:
    # Everything of the remedies (the book depends on it through notebook 05).
    input:
        REMEDY_TABLE,
        REMEDY_GAP,
