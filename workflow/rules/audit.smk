# The audit preset's own rules (beside the paper's download, data and generation rules and the
# shared measurement, analysis and steering): every audited model's hidden states, CKA between
# every pair and the projections (Figure 2 for every model), and the chapter "Beyond LLaVA".
AUDIT_STATES = expand(f"{RUN}/inside/{{model}}", model=MODELS)


rule audit_corpus:
    # The images CKA compares, drawn from the benchmarks' own (every model sees the same).
    input:
        f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/data/cka_images.npy",
    params:
        **params_of("seed", "steering.cka_images"),
    log:
        f"{LOGS}/audit_corpus.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} audit-corpus --tasks {input} --out {output} > {log} 2>&1"


rule audit_states:
    # One model's pooled states of the CKA images at every layer and its projected tokens.
    input:
        model=vlm_input,
        tasks=f"{RUN}/data/tasks.parquet",
        images=f"{RUN}/data/cka_images.npy",
    output:
        directory(f"{RUN}/inside/{{model}}"),
    params:
        **params_of(
            "seed",
            "languages",
            "steering.layer",
            "steering.benchmarks",
            "steering.projection_points",
        ),
    log:
        f"{LOGS}/audit_states-{{model}}.log",
    benchmark:
        f"{BENCH}/audit_states-{{model}}.tsv"
    resources:
        gpu=gpu_resources("gpu"),
        mem_mb=gpu_resources("mem_mb"),
        runtime=gpu_resources("runtime"),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} audit-states --model {input.model}"
        " --tasks {input.tasks} --images {input.images} --out {output} > {log} 2>&1"


rule audit_inside:
    # CKA between every pair of models (image and text positions) and every model's tokens in
    # 2-D with the modality gap, on the CPU from the saved states.
    input:
        AUDIT_STATES,
    output:
        cka=f"{RUN}/tables/cka.csv",
        points=f"{RUN}/tables/projection.csv",
        gaps=f"{RUN}/tables/modality_gap.csv",
    params:
        **params_of("seed", "steering.projection"),
        names=" ".join(MODELS),
    log:
        f"{LOGS}/audit_inside.log",
    benchmark:
        f"{BENCH}/audit_inside.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} audit-inside --states {input} --names {params.names}"
        " --cka {output.cka} --points {output.points} --gaps {output.gaps} > {log} 2>&1"


rule audit_table:
    # "Beyond LLaVA": one row per model beside the paper's LLaVA-1.5, and the IFL per language.
    input:
        labelled=f"{RUN}/labelled.parquet",
        steering=f"{RUN}/tables/steering_table5.csv",
        states=AUDIT_STATES,
    output:
        table=f"{RUN}/tables/audit.csv",
        languages=f"{RUN}/tables/audit_languages.csv",
    params:
        **params_of("seed", "dsl", "gold"),
        names=" ".join(MODELS),
        paper=PAPER,
    log:
        f"{LOGS}/audit_table.log",
    benchmark:
        f"{BENCH}/audit_table.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} audit-table --labelled {input.labelled}"
        " --steering {input.steering} --states {input.states} --names {params.names}"
        " --paper-dir {params.paper} --out {output.table} --languages-out {output.languages} > {log} 2>&1"
