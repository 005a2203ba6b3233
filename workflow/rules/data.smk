# Evaluation tasks (both conditions share them) and the organism's training corpus.


rule tasks:
    output:
        table=f"{RUN}/data/tasks.parquet",
        images=directory(f"{RUN}/data/images"),
    params:
        **params_of("seed", "languages", "organism.items_per_benchmark", "organism.image_size"),
    log:
        f"{LOGS}/tasks.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} tasks --out {output.table} --image-dir {output.images} > {log} 2>&1"


rule corpus:
    output:
        directory(f"{RUN}/data/corpus"),
    params:
        **params_of("seed", "organism.train_scenes", "organism.image_size", "organism.stage2"),
    log:
        f"{LOGS}/corpus.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} corpus --out {output} > {log} 2>&1"
