# The paper preset's data: NLLB translation of VisIT-Bench and of the stage-2 instructions
# (sharded GPU jobs, each resumable), the task table of the four real benchmarks, and the
# images CKA compares. The audit preset uses the benchmarks' rules only.


rule visit:
    # English VisIT-Bench (single-image instructions), the source of its translations.
    input:
        staged("dataset:visit") if HAS_VISIT else [],
    output:
        table=f"{RUN}/data/visit-en.parquet",
        images=directory(f"{RUN}/data/visit-images"),
    params:
        **params_of(),
    log:
        f"{LOGS}/visit.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-visit --out {output.table}"
        " --image-dir {output.images} > {log} 2>&1"


rule segments_visit:
    input:
        f"{RUN}/data/visit-en.parquet",
    output:
        f"{RUN}/translate/visit/segments.parquet",
    params:
        **params_of(),
    log:
        f"{LOGS}/segments-visit.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-segments --corpus visit --visit {input}"
        " --out {output} > {log} 2>&1"


rule translate:
    # One NLLB shard of one corpus into one language; finished batches survive a kill.
    input:
        segments=f"{RUN}/translate/{{corpus}}/segments.parquet",
        model=lambda w: staged("model:translator"),
    output:
        f"{RUN}/translate/{{corpus}}/{{lang}}/shard-{{shard}}.parquet",
    wildcard_constraints:
        corpus="visit|instruct",
    params:
        **params_of("seed", "translation"),
    log:
        f"{LOGS}/translate-{{corpus}}-{{lang}}-{{shard}}.log",
    benchmark:
        f"{BENCH}/translate-{{corpus}}-{{lang}}-{{shard}}.tsv"
    resources:
        gpu=RES["gpu_translate"],
        mem_mb=RES["mem_mb_translate"],
        runtime=RES["runtime_translate"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-translate --segments {input.segments}"
        " --lang {wildcards.lang} --shard {wildcards.shard} --shards {params.translation[shards]}"
        " --out {output} > {log} 2>&1"


rule tasks:
    # Table 2's tasks: MaXM, PALO's LLaVA-Bench, VisIT-Bench (+ NLLB translations), MultiQ.
    input:
        unpack(task_inputs),
    output:
        table=f"{RUN}/data/tasks.parquet",
        images=directory(f"{RUN}/data/images"),
    params:
        **params_of("languages", "datasets"),
        visit=lambda w, input: f"--visit {input.visit}" if "visit" in input.keys() else "",
    log:
        f"{LOGS}/tasks.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-tasks {params.visit}"
        " --visit-shards {input.visit_shards} --out {output.table} --image-dir {output.images}"
        " > {log} 2>&1"


# The grid's training data and the images CKA compares (the audit trains nothing and draws
# its CKA images from the benchmarks, audit.smk).
if PRESET == "paper":

    rule segments_instruct:
        # The unique sentences of mix665k's turns (its prompts repeat hundreds of thousands of times).
        input:
            staged("dataset:llava-instruct"),
        output:
            f"{RUN}/translate/instruct/segments.parquet",
        params:
            **params_of("training_data.instruct"),
        log:
            f"{LOGS}/segments-instruct.log",
        resources:
            mem_mb=RES["mem_mb_translate"],
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-segments --corpus instruct"
            " --out {output} > {log} 2>&1"

    rule instruct:
        # mix665k in another language, in LLaVA's JSON format (stage 2 of the grid's zh/de VLMs).
        input:
            data=staged("dataset:llava-instruct"),
            shards=lambda w: translation_shards("instruct", w.lang),
        output:
            f"{RUN}/data/instruct-{{lang}}.json",
        params:
            **params_of("training_data.instruct"),
        log:
            f"{LOGS}/instruct-{{lang}}.log",
        resources:
            mem_mb=RES["mem_mb_translate"],
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-instruct --lang {wildcards.lang}"
            " --shards {input.shards} --out {output} > {log} 2>&1"

    rule corpus:
        # The images the CKA rule compares (images.npy, the organism corpus's contract), drawn from
        # LLaVA-Pretrain's images.
        input:
            staged("dataset:llava-pretrain"),
        output:
            directory(f"{RUN}/data/corpus"),
        params:
            **params_of("seed", "steering.cka_images", "training_data.pretrain"),
        log:
            f"{LOGS}/corpus.log",
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-cka-images --out {output} > {log} 2>&1"
