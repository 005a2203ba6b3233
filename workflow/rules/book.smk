# The Jupyter Book: stage sources + executed notebooks + summary, then build the HTML.


rule rulegraph:
    # Depends on the code and the config values that shape the DAG, not on every config value:
    # a changed notebook parameter must not redraw the graph.
    input:
        snakefile="Snakefile",
        rules=sorted(str(p) for p in Path("workflow/rules").glob("*.smk")),
    output:
        dot=f"{RUN}/dag/rulegraph.dot",
        png=f"{RUN}/dag/rulegraph.png",
        dry=f"{RUN}/dag/dry-run.txt",
    params:
        **params_of("languages", "backbones", "vision_encoders", "grid", "generate.shards", "steering", "remedies"),
    log:
        f"{LOGS}/rulegraph.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m snakemake --rulegraph --rerun-incomplete --nolock --quiet all --configfile {params.cfg} > {output.dot} 2> {log}"
        " && $IFL_PYTHON -m snakemake -n --forceall --rerun-incomplete --nolock --quiet rules --configfile {params.cfg}"
        " > {output.dry} 2>> {log}"
        " && $IFL_PYTHON -m ifl.cli --config {params.cfg} rulegraph --dot {output.dot} --out {output.png} >> {log} 2>&1"


rule book:
    input:
        sources=BOOK_SOURCES,
        notebooks=NOTEBOOKS,
        summary=f"{RUN}/summary.json",
    output:
        BOOK_INDEX,
    params:
        **params_of(),
        run=lambda w, input: os.path.dirname(input.summary),
    log:
        f"{LOGS}/book.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} book --src book --run-dir {params.run}"
        " --notebooks {input.notebooks} --out book/_build > {log} 2>&1"
