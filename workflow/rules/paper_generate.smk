# Replies of the released VLMs (`models:`), of the trained grid VLMs or of the audited VLMs to
# every task in both conditions, each in its checkpoint's own prompt format; shards resume
# independently.


rule generate:
    input:
        model=vlm_input,
        tasks=f"{RUN}/data/tasks.parquet",
    output:
        f"{RUN}/generations/{{model}}/shard-{{shard}}.parquet",
    params:
        **params_of("seed", "generate"),
        shards=SHARDS_N,
        target=vlm_path,
    log:
        f"{LOGS}/generate-{{model}}-{{shard}}.log",
    benchmark:
        f"{BENCH}/generate-{{model}}-{{shard}}.tsv"
    resources:
        gpu=gpu_resources("gpu"),
        mem_mb=gpu_resources("mem_mb"),
        runtime=gpu_resources("runtime"),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-generate --model {params.target}"
        " --tasks {input.tasks} --name {wildcards.model} --shard {wildcards.shard}"
        " --shards {params.shards} --out {output} > {log} 2>&1"
