# Language identification of every reply (the proxy the DSL estimator debiases).
# Without a gold sample (`gold.enabled: false`) every estimate is the LID proxy's, not debiased.
GOLD_ON = config["gold"].get("enabled", True)
GOLD_ANNOTATED = {"annotated": f"{RUN}/gold/annotated.csv"} if GOLD_ON else {}


rule measure:
    input:
        generations=expand(f"{RUN}/generations/{{model}}/shard-{{shard}}.parquet", model=MODELS, shard=SHARDS),
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/measured.parquet",
    params:
        **params_of("lid"),
    log:
        f"{LOGS}/measure.log",
    benchmark:
        f"{BENCH}/measure.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} measure --generations {input.generations} --tasks {input.tasks} --out {output} > {log} 2>&1"


rule judge:
    input:
        measured=f"{RUN}/measured.parquet",
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/judged.parquet",
    params:
        **params_of("judge"),
    log:
        f"{LOGS}/judge.log",
    benchmark:
        f"{BENCH}/judge.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} judge --measured {input.measured} --tasks {input.tasks}"
        " --out {output} > {log} 2>&1"


if GOLD_ON:

    rule gold_sample:
        # Appendix B: the stratified gold sample and its blank annotation sheet.
        input:
            measured=f"{RUN}/measured.parquet",
            tasks=f"{RUN}/data/tasks.parquet",
        output:
            sample=f"{RUN}/gold/sample.parquet",
            sheet=f"{RUN}/gold/sheet.csv",
        params:
            **params_of("seed", "gold.size", "gold.multipliers"),
        log:
            f"{LOGS}/gold_sample.log",
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} gold-sample --measured {input.measured}"
            " --tasks {input.tasks} --out {output.sample} --sheet {output.sheet} > {log} 2>&1"

    rule gold_annotate:
        # The organism's oracle fills the sheet; with `gold.annotator: sheet` the completed sheet at
        # `gold.sheet` is validated and imported (the job stops, saying which file to annotate).
        input:
            sample=f"{RUN}/gold/sample.parquet",
            sheet=f"{RUN}/gold/sheet.csv",
            tasks=f"{RUN}/data/tasks.parquet",
        output:
            f"{RUN}/gold/annotated.csv",
        params:
            **params_of("gold.annotator", "gold.sheet"),
        log:
            f"{LOGS}/gold_annotate.log",
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} gold-annotate --sample {input.sample}"
            " --sheet {input.sheet} --tasks {input.tasks} --out {output} > {log} 2>&1"
            " || (tail -n 1 {log} >&2; exit 1)"


rule labelled:
    input:
        measured=f"{RUN}/measured.parquet",
        judged=f"{RUN}/judged.parquet",
        tasks=f"{RUN}/data/tasks.parquet",
        **GOLD_ANNOTATED,
    output:
        f"{RUN}/labelled.parquet",
    params:
        **params_of("gold"),
    log:
        f"{LOGS}/labelled.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} labelled --measured {input.measured}"
        " --judged {input.judged}" + (" --annotated {input.annotated}" if GOLD_ON else "") + " --tasks {input.tasks}"
        " --out {output} > {log} 2>&1"
