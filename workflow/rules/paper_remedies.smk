# The paper preset's remedy variants (set-up and the shared rules are in remedies.smk): mixes of
# mix665k, its NLLB translations into `remedies.languages` (the `translate`/`instruct` rules of
# paper_data.smk, shared with the grid's zh/de data) and the staged text-only data; stage 2 with
# the LLaVA-1.5 recipe from the base's stage-1 checkpoint; merging with the staged original LLM,
# shard by shard on disk; replies to the evaluation subset through `paper-generate`.
from ifl.remedies import remedy_languages as _remedy_languages

try:
    _paper.check_remedies(config, list(REMEDY_VARIANTS.values()))
except ValueError as _err:
    sys.stderr.write(f"config error: {_err}\n")
    sys.exit(1)
REMEDY_LANGS = _remedy_languages(config)
# The base's own stage-2 data: the staged English mix665k, or its translation.
REMEDY_BASE_DATA = [] if REMEDY_BASE["data"] == "en" else [f"{RUN}/data/instruct-{REMEDY_BASE['data']}.json"]
REMEDY_TRANSLATIONS = {lang: f"{RUN}/data/instruct-{lang}.json" for lang in REMEDY_LANGS}


rule remedy_mix:
    # A variant's stage-2 data in LLaVA's JSON format (plus source, phase and language per row).
    input:
        english=staged("dataset:llava-instruct"),
        base=REMEDY_BASE_DATA,
        translations=lambda w: list(REMEDY_TRANSLATIONS.values()) if REMEDY_VARIANTS[w.variant]["tasks"] else [],
        text=lambda w: [staged(_paper.REMEDY_TEXT)] if REMEDY_VARIANTS[w.variant]["text_ratio"] > 0 else [],
    output:
        f"{REMEDY_DIR}/mixes/{{variant}}.json",
    wildcard_constraints:
        variant=REMEDY_TRAINED_RE,
    params:
        **params_of("seed", "languages", "remedies.languages", "training_data.instruct"),
        text_data=config["remedies"].get("text_data"),
        spec=lambda w: REMEDY_SPEC[w.variant],
        base=lambda w, input: f"--base-data {input.base}" if input.base else "",
        translations=lambda w, input: " ".join(
            f"--translation {lang} {REMEDY_TRANSLATIONS[lang]}" for lang in REMEDY_LANGS if input.translations
        ),
    log:
        f"{LOGS}/remedy_mix-{{variant}}.log",
    benchmark:
        f"{BENCH}/remedy_mix-{{variant}}.tsv"
    resources:
        # mix665k and one translation in memory at a time
        mem_mb=RES["mem_mb_translate"],
        runtime=RES["runtime_generate"],
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-remedy-mix --variant {wildcards.variant}"
        " {params.base} {params.translations} --out {output} > {log} 2>&1"


rule remedy_train:
    # Stage 2 of the base from its stage-1 checkpoint on the variant's mix (same recipe and seed).
    input:
        model=f"{RUN}/models/stage1/{REMEDY_BASE['llm']}-{REMEDY_BASE['vision']}",
        mix=f"{REMEDY_DIR}/mixes/{{variant}}.json",
    output:
        directory(f"{REMEDY_DIR}/vlm/{{variant}}"),
    wildcard_constraints:
        variant=REMEDY_TRAINED_RE,
    params:
        **params_of("seed", "training_data.instruct", "training.stage2", "training.max_length", "training.bf16"),
        spec=lambda w: REMEDY_SPEC[w.variant],
        launch=launcher(),
    log:
        f"{LOGS}/remedy_train-{{variant}}.log",
    benchmark:
        f"{BENCH}/remedy_train-{{variant}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
        # data-loading threads for each of the node's training processes
        cpus_per_task=config["threads"] * max(1, RES["gpu_train"]),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON {params.launch} --config {params.cfg} paper-remedy-train --model {input.model}"
        " --mix {input.mix} --variant {wildcards.variant} --out {output} > {log} 2>&1"


rule remedy_merge:
    # (1 - alpha) * fine-tuned LLM + alpha * the staged original LLM, shard by shard on disk (CPU).
    input:
        vlm=f"{RUN}/models/vlm/{REMEDY_BASE['name']}",
        llm=staged(f"model:{REMEDY_BASE['llm']}"),
    output:
        directory(f"{REMEDY_DIR}/merged/{{variant}}"),
    wildcard_constraints:
        variant=REMEDY_MERGED_RE,
    params:
        **params_of(),
        alpha=lambda w: REMEDY_VARIANTS[w.variant]["alpha"],
        llm=lambda w, input: os.path.dirname(input.llm),
    log:
        f"{LOGS}/remedy_merge-{{variant}}.log",
    benchmark:
        f"{BENCH}/remedy_merge-{{variant}}.tsv"
    resources:
        mem_mb=RES["mem_mb_generate"],
        runtime=RES["runtime_generate"],
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} remedies-merge --vlm {input.vlm} --llm {params.llm}"
        " --alpha {params.alpha} --out {output} > {log} 2>&1"


rule remedy_generate:
    # One shard of a variant's replies to the evaluation subset, in its checkpoint's format.
    input:
        model=lambda w: REMEDY_MODEL[w.variant],
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{REMEDY_DIR}/generations/{{variant}}/shard-{{shard}}.parquet",
    wildcard_constraints:
        variant=REMEDY_GENERATED_RE,
    params:
        **params_of("seed", "generate", "languages", "remedies.eval"),
        shards=SHARDS_N,
    log:
        f"{LOGS}/remedy_generate-{{variant}}-{{shard}}.log",
    benchmark:
        f"{BENCH}/remedy_generate-{{variant}}-{{shard}}.tsv"
    resources:
        gpu=RES["gpu_generate"],
        mem_mb=RES["mem_mb_generate"],
        runtime=RES["runtime_generate"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-generate --model {input.model} --remedies-eval"
        " --tasks {input.tasks} --name {wildcards.variant} --shard {wildcards.shard}"
        " --shards {params.shards} --out {output} > {log} 2>&1"
