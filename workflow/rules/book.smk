# The Jupyter Book: stage sources + executed notebooks + summary, then build the HTML.


rule rulegraph:
    # Depends on the code and the config values that shape the DAG, not on every config value:
    # a changed notebook parameter must not redraw the graph. The how-built chapter draws it
    # by stage (ifl.dag.draw_by_stage), each rule's stage read from workflow/rules.
    input:
        snakefile="Snakefile",
        rules=sorted(str(p) for p in Path("workflow/rules").glob("*.smk")),
    output:
        dot=f"{RUN}/dag/rulegraph.dot",
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


rule book:
    input:
        sources=BOOK_SOURCES,
        notebooks=NOTEBOOKS,
        summary=f"{RUN}/summary.json",
        # the front page's findings read these beside summary.json (ifl.front_page)
        tables=[v for k, v in SUMMARY_INPUTS.items() if k != "organism"]
        + [f"{RUN}/tables/design_effects.csv"],
    output:
        BOOK_INDEX,
    params:
        **params_of(),
        run=lambda w, input: os.path.dirname(input.summary),
        out=lambda w, output: os.path.dirname(os.path.dirname(output[0])),  # book/_build/<run>
    log:
        f"{LOGS}/book.log",
    conda:
        "../../environment.yml"
    shell:
        "$IFL_PYTHON -m ifl.cli --config {params.cfg} book --src book --run-dir {params.run}"
        " --notebooks {input.notebooks} --out {params.out} > {log} 2>&1"
