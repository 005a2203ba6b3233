# Language identification of every reply (the proxy the DSL estimator debiases).


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
        "{IFL} measure --generations {input.generations} --tasks {input.tasks} --out {output} > {log} 2>&1"
