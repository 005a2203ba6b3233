# Tables computed by the ifl package, then notebooks executed by papermill that read and draw them.


rule fidelity_table:
    input:
        f"{RUN}/measured.parquet",
    output:
        f"{RUN}/tables/fidelity.csv",
    params:
        **params_of(),
    log:
        f"{LOGS}/fidelity_table.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} fidelity --measured {input} --out {output} > {log} 2>&1"


rule prevalence:
    # Figure 1 and 3, Table 4 and the per-language table: DSL, naive and (organism) oracle.
    input:
        f"{RUN}/labelled.parquet",
    output:
        ifl=f"{RUN}/tables/ifl.csv",
        by_language=f"{RUN}/tables/ifl_by_language.csv",
        by_condition=f"{RUN}/tables/fidelity_by_condition.csv",
        design=f"{RUN}/tables/design_effects.csv",
    params:
        **params_of("seed", "dsl"),
        out_dir=lambda w, output: os.path.dirname(output.ifl),
    log:
        f"{LOGS}/prevalence.log",
    benchmark:
        f"{BENCH}/prevalence.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} prevalence --labelled {input}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule dsl_coverage:
    # The organism knows every reply's truth: redraw the gold sample, check DSL's intervals.
    input:
        f"{RUN}/labelled.parquet",
    output:
        f"{RUN}/tables/dsl_coverage.csv",
    params:
        **params_of("seed", "dsl", "gold.multipliers", "dsl_coverage"),
    log:
        f"{LOGS}/dsl_coverage.log",
    benchmark:
        f"{BENCH}/dsl_coverage.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} dsl-coverage --labelled {input} --out {output} > {log} 2>&1"


rule notebook:
    # Every notebook reads its tables by path parameters; a changed parameter reruns only it.
    input:
        notebook="notebooks/{notebook}.ipynb",
        tables=lambda w: NOTEBOOK_TABLES[w.notebook].values(),
    output:
        f"{RUN}/notebooks/{{notebook}}.ipynb",
    params:
        **params_of(),
        args=lambda w: notebook_args(w.notebook),
    log:
        f"{LOGS}/notebook-{{notebook}}.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} notebook {input.notebook} {output} {params.args} > {log} 2>&1"


rule summary:
    # Inputs per preset (common.smk): the organism adds its quality tables and the remedies.
    input:
        **SUMMARY_INPUTS,
    output:
        f"{RUN}/summary.json",
    params:
        **params_of(),
        optional=summary_options,
        bench=BENCH,
    log:
        f"{LOGS}/summary.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} summary --fidelity {input.fidelity} --ifl {input.ifl}"
        " --bench-dir {params.bench} --steering {input.steering} {params.optional}"
        " --out {output} > {log} 2>&1"


rule organism_report:
    # Is the organism a fair stand-in? LID, the LMs' reading and replies, VLM fidelity and accuracy.
    input:
        tasks=f"{RUN}/data/tasks.parquet",
        labelled=f"{RUN}/labelled.parquet",
        induction=BASE_LMS[0],
        base=BASE_LMS[1],
        llms=expand(f"{RUN}/models/llm/{{llm}}", llm=LLMS),
        visions=expand(f"{RUN}/models/vision/{{vision}}", vision=VISIONS),
        corpus=f"{RUN}/data/corpus",
        checkpoints=CHECKPOINTS,
    output:
        lid=f"{RUN}/tables/organism_lid.csv",
        llm_text=f"{RUN}/tables/organism_llm_text.csv",
        llm_keys=f"{RUN}/tables/organism_llm_keys.csv",
        llm_lookup=f"{RUN}/tables/organism_llm_lookup.csv",
        vlm_fidelity=f"{RUN}/tables/organism_vlm_fidelity.csv",
        accuracy=f"{RUN}/tables/organism_accuracy.csv",
        accuracy_kind=f"{RUN}/tables/organism_accuracy_kind.csv",
        accuracy_language=f"{RUN}/tables/organism_accuracy_language.csv",
        reply_language=f"{RUN}/tables/organism_reply_language.csv",
        probe=f"{RUN}/tables/organism_probe.csv",
        loss=f"{RUN}/tables/organism_loss.csv",
    params:
        **params_of("seed", "lid", "languages", "backbones"),
        # organism-only keys, read when the job runs (another preset's config may lack them)
        checks=lambda w: {k: config["organism"][k] for k in ("base_llm", "text_check_per_kind")},
        out_dir=lambda w, output: os.path.dirname(output.lid),
    log:
        f"{LOGS}/organism_report.log",
    benchmark:
        f"{BENCH}/organism_report.tsv"
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} organism-report --tasks {input.tasks}"
        " --labelled {input.labelled} --induction {input.induction} --base {input.base}"
        " --llms {input.llms} --visions {input.visions}"
        " --corpus {input.corpus} --checkpoints {input.checkpoints}"
        " --out-dir {params.out_dir} > {log} 2>&1"
