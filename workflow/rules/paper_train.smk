# The paper preset's design grid (Table 3) with the LLaVA-1.5 recipe: compose each LLM x
# encoder pair with a fresh projector, stage 1 (projector, LLaVA-Pretrain) once per pair,
# stage 2 (projector + LLM, mix665k in the VLM's data language) once per grid VLM.


rule compose:
    input:
        llm=lambda w: staged(f"model:{w.llm}"),
        vision=lambda w: staged(f"model:{w.vision}"),
    output:
        directory(f"{RUN}/models/composed/{{llm}}-{{vision}}"),
    params:
        **params_of(
            "seed",
            "training.bf16",
            "training.vision_feature_layer",
            "training.projector",
            "training.image_aspect_ratio",
        ),
    log:
        f"{LOGS}/compose-{{llm}}-{{vision}}.log",
    resources:
        mem_mb=RES["mem_mb_generate"],
        runtime=RES["runtime_generate"],
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} paper-compose --llm {wildcards.llm}"
        " --vision {wildcards.vision} --out {output} > {log} 2>&1"


rule stage1:
    input:
        model=f"{RUN}/models/composed/{{llm}}-{{vision}}",
        data=staged("dataset:llava-pretrain"),
    output:
        directory(f"{RUN}/models/stage1/{{llm}}-{{vision}}"),
    params:
        **params_of("seed", "training_data.pretrain", "training.stage1", "training.max_length", "training.bf16"),
        launch=launcher(),
    log:
        f"{LOGS}/stage1-{{llm}}-{{vision}}.log",
    benchmark:
        f"{BENCH}/stage1-{{llm}}-{{vision}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
        # data-loading threads for each of the node's training processes
        cpus_per_task=config["threads"] * max(1, RES["gpu_train"]),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON {params.launch} --config {params.cfg} paper-train --stage 1 --model {input.model}"
        " --out {output} > {log} 2>&1"


rule stage2:
    input:
        model=f"{RUN}/models/stage1/{{llm}}-{{vision}}",
        data=instructions,
    output:
        directory(f"{RUN}/models/vlm/{{llm}}-{{vision}}-{{lang}}"),
    params:
        **params_of("seed", "training_data.instruct", "training.stage2", "training.max_length", "training.bf16"),
        launch=launcher(),
        # English trains on the staged mix665k (no --data: the trainer reads the config's file)
        data=lambda w, input: "" if w.lang == "en" else f"--data {input.data}",
    log:
        f"{LOGS}/stage2-{{llm}}-{{vision}}-{{lang}}.log",
    benchmark:
        f"{BENCH}/stage2-{{llm}}-{{vision}}-{{lang}}.tsv"
    resources:
        gpu=RES["gpu_train"],
        mem_mb=RES["mem_mb_train"],
        runtime=RES["runtime_train"],
        # data-loading threads for each of the node's training processes
        cpus_per_task=config["threads"] * max(1, RES["gpu_train"]),
    threads: config["threads"]
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON {params.launch} --config {params.cfg} paper-train --stage 2 --model {input.model}"
        " {params.data} --out {output} > {log} 2>&1"
