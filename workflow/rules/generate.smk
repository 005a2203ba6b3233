# Replies of every VLM to every task in both conditions, in shards that resume independently.


rule generate:
    input:
        model=f"{RUN}/models/vlm/{{model}}",
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/generations/{{model}}/shard-{{shard}}.parquet",
    params:
        **params_of("seed", "generate"),
        shards=SHARDS_N,
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
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} generate --model {input.model} --tasks {input.tasks} --name {wildcards.model}"
        " --shard {wildcards.shard} --shards {params.shards} --out {output} > {log} 2>&1"
