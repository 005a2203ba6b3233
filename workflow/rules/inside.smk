# Inside the model (the paper's section 5): the steering remedy (Table 5, Tables 6-9, a sweep,
# automatic attribute selection, the text-condition check) and Figure 2's representation
# analyses (2-D projection of image and text tokens; layer-by-layer CKA between two models).

from ifl.steering.plan import cka_pair, projection_model, steer_models, sweep_model

try:
    STEER_MODELS = steer_models(config)
    SWEEP_MODEL = sweep_model(config)
    CKA_A, CKA_B = cka_pair(config)
    PROJECTION_MODEL = projection_model(config)
except ValueError as _err:
    sys.stderr.write(f"config error: {_err}\n")
    sys.exit(1)

STEER_PARAMS = [
    "seed",
    "generate",
    "steering.layer",
    "steering.strength",
    "steering.reduce",
    "steering.positions",
    "steering.variants",
    "steering.benchmarks",
    "steering.auto_selection",
    "steering.text_check",
]
STEER_GENERATIONS = expand(f"{RUN}/steering/remedy/{{model}}.parquet", model=STEER_MODELS)
if SWEEP_MODEL:
    STEER_GENERATIONS.append(f"{RUN}/steering/sweep/{SWEEP_MODEL}.parquet")
STEER_TABLES = {
    name: f"{RUN}/tables/steering_{name}.csv"
    for name in ("table5", "by_language", "sweep", "text", "selection", "question_lid")
}


rule steer_questions:
    # The LID model's reading of every question: automatic attribute selection picks a_lang by it.
    input:
        f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/steering/questions.parquet",
    params:
        **params_of("lid"),
    log:
        f"{LOGS}/steer_questions.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} steer-questions --tasks {input} --out {output} > {log} 2>&1"


rule steer:
    # Table 5's runs of one model: every variant (oracle selection), the text-condition check
    # and automatic selection; resumable run by run.
    input:
        model=vlm_input,
        tasks=f"{RUN}/data/tasks.parquet",
        questions=f"{RUN}/steering/questions.parquet",
    output:
        f"{RUN}/steering/remedy/{{model}}.parquet",
    params:
        **params_of(*STEER_PARAMS),
    log:
        f"{LOGS}/steer-{{model}}.log",
    benchmark:
        f"{BENCH}/steer-{{model}}.tsv"
    resources:
        gpu=gpu_resources("gpu"),
        mem_mb=gpu_resources("mem_mb"),
        runtime=gpu_resources("runtime"),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} steer --study remedy --model {input.model}"
        " --name {wildcards.model} --tasks {input.tasks} --questions {input.questions} --out {output} > {log} 2>&1"


rule steer_sweep:
    # The fidelity / accuracy trade-off over steering layer and strength, on one model.
    input:
        model=vlm_input,
        tasks=f"{RUN}/data/tasks.parquet",
        questions=f"{RUN}/steering/questions.parquet",
    output:
        f"{RUN}/steering/sweep/{{model}}.parquet",
    params:
        **params_of("seed", "generate", "steering.reduce", "steering.positions", "steering.sweep"),
    log:
        f"{LOGS}/steer_sweep-{{model}}.log",
    benchmark:
        f"{BENCH}/steer_sweep-{{model}}.tsv"
    resources:
        gpu=gpu_resources("gpu"),
        mem_mb=gpu_resources("mem_mb"),
        runtime=gpu_resources("runtime"),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} steer --study sweep --model {input.model}"
        " --name {wildcards.model} --tasks {input.tasks} --questions {input.questions} --out {output} > {log} 2>&1"


rule steer_measure:
    # Steered replies measured as the main run's (LID, reference judge, organism oracle), stacked
    # on the main run's unsteered replies of the same models.
    input:
        generations=STEER_GENERATIONS,
        baseline=f"{RUN}/measured.parquet",
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/steering/measured.parquet",
    params:
        **params_of("lid", "preset"),
    log:
        f"{LOGS}/steer_measure.log",
    benchmark:
        f"{BENCH}/steer_measure.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} steer-measure --generations {input.generations}"
        " --baseline {input.baseline} --tasks {input.tasks} --out {output} > {log} 2>&1"


rule steer_tables:
    # Table 5, Tables 6-9, the sweep, oracle vs automatic selection, the text-condition check.
    input:
        measured=f"{RUN}/steering/measured.parquet",
        questions=f"{RUN}/steering/questions.parquet",
    output:
        **STEER_TABLES,
    params:
        **params_of("steering.reduce", "steering.positions", "steering.benchmarks"),
        out_dir=lambda w, output: os.path.dirname(output.table5),
    log:
        f"{LOGS}/steer_tables.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} steer-tables --measured {input.measured}"
        " --questions {input.questions} --out-dir {params.out_dir} > {log} 2>&1"


# One pair of models compared and one model projected (the audit preset compares every pair
# and projects every model: audit.smk).
if PRESET != "audit":

    rule cka:
        # Figure 2, centre and right: layer-by-layer CKA between two models (linear below the
        # diagonal, RBF above), over image positions and over text positions.
        input:
            model_a=f"{RUN}/models/vlm/{CKA_A}",
            model_b=f"{RUN}/models/vlm/{CKA_B}",
            corpus=f"{RUN}/data/corpus",
        output:
            f"{RUN}/tables/cka.csv",
        params:
            **params_of("seed", "languages", "steering.cka_models", "steering.cka_images"),
            names=f"{CKA_A} {CKA_B}",
            images=lambda w, input: os.path.join(input.corpus, "images.npy"),
        log:
            f"{LOGS}/cka.log",
        benchmark:
            f"{BENCH}/cka.tsv"
        resources:
            gpu=RES["gpu_generate"],
            mem_mb=RES["mem_mb_generate"],
            runtime=RES["runtime_generate"],
        threads: config["threads"]
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} cka --model-a {input.model_a} --model-b {input.model_b}"
            " --names {params.names} --images {params.images} --out {output} > {log} 2>&1"

    rule projection:
        # Figure 2, left: image tokens and the question tokens of every language embedded jointly in
        # 2-D (UMAP, or t-SNE), at the input, the steering layer and the last layer.
        input:
            model=f"{RUN}/models/vlm/{PROJECTION_MODEL}",
            tasks=f"{RUN}/data/tasks.parquet",
        output:
            points=f"{RUN}/tables/projection.csv",
            gap=f"{RUN}/tables/modality_gap.csv",
        params:
            **params_of(
                "seed",
                "steering.layer",
                "steering.benchmarks",
                "steering.projection",
                "steering.projection_model",
                "steering.projection_points",
            ),
            name=PROJECTION_MODEL,
        log:
            f"{LOGS}/projection.log",
        benchmark:
            f"{BENCH}/projection.tsv"
        resources:
            gpu=RES["gpu_generate"],
            mem_mb=RES["mem_mb_generate"],
            runtime=RES["runtime_generate"],
        threads: config["threads"]
        conda:
            "../../environment.yml"
        shell:
            "$IFL_PYTHON -m ifl.cli --config {params.cfg} project --model {input.model} --name {params.name}"
            " --tasks {input.tasks} --out {output.points} --gap-out {output.gap} > {log} 2>&1"
