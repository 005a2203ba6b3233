# Replies of the released VLMs (`models:`) and of the trained grid VLMs to every task in both
# conditions, each in its checkpoint's own prompt format; shards resume independently.


rule generate:
    input:
        model=generate_model,
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/generations/{{model}}/shard-{{shard}}.parquet",
    params:
        **params_of("seed", "generate"),
        shards=SHARDS_N,
        target=generate_target,
    log:
        f"{LOGS}/generate-{{model}}-{{shard}}.log",
    benchmark:
        f"{BENCH}/generate-{{model}}-{{shard}}.tsv"
    resources:
        gpu=RES["gpu_generate"],
        mem_mb=RES["mem_mb_generate"],
        runtime=RES["runtime_generate"],
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-generate --model {params.target}"
        " --tasks {input.tasks} --name {wildcards.model} --shard {wildcards.shard}"
        " --shards {params.shards} --out {output} > {log} 2>&1"
