"""The command line mirrors the workflow: every rule's shell command runs a subcommand of
``python -m ifl.cli``, and that subcommand lives in ``ifl/cli/<rule file>.py`` (a subcommand that
rules of two files run lives with the file the Snakefile includes first)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from ifl.cli import STAGES, main, subcommands
from ifl.config import REPO_ROOT

RULE = re.compile(r"^(\s*)rule (\w+):", re.MULTILINE)
# How a rule runs the package: directly, or through the launcher of paper_common.smk (whose
# two forms are `-m ifl.cli` and accelerate's `--module ifl.cli`).
CALL = re.compile(r"\$IFL_PYTHON (?:-m ifl\.cli|\{params\.launch\}) --config \{params\.cfg\} (\S+)")


def included_rule_files() -> list[str]:
    """Stems of the rule files in the Snakefile's include order."""
    text = (REPO_ROOT / "Snakefile").read_text(encoding="utf-8")
    return re.findall(r'include: "workflow/rules/(\w+)\.smk"', text)


def _strings(expr: str) -> str:
    """The string literals of a Python expression, joined (a shell command built with ``+``
    and conditionals gives every piece it may contain)."""
    tree = ast.parse("(" + expr + ")", mode="eval")
    return "".join(
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )


def shell_commands(smk: str) -> dict[str, str]:
    """Each rule's shell command: the string literals under ``shell:``, concatenated."""
    out, rule, indent, lines = {}, None, None, []
    for line in [*smk.splitlines(), "end:"]:
        depth = len(line) - len(line.lstrip())
        if indent is not None and line.strip() and depth <= indent:
            out[rule] = _strings("\n".join(lines))
            indent, lines = None, []
        if m := RULE.match(line):
            rule = m.group(2)
        elif line.strip() == "shell:":
            indent = depth
        elif indent is not None:
            lines.append(line)
    return out


def rule_subcommands() -> dict[tuple[str, str], list[str]]:
    """(rule file, rule) -> the subcommands its shell command runs."""
    out = {}
    for stem in included_rule_files():
        smk = (REPO_ROOT / "workflow" / "rules" / f"{stem}.smk").read_text(encoding="utf-8")
        for rule, shell in shell_commands(smk).items():
            runs = shell.count("$IFL_PYTHON") - shell.count("$IFL_PYTHON -m snakemake")
            found = CALL.findall(shell)
            assert len(found) == runs, f"{stem}.smk rule {rule}: not every call is ifl.cli: {shell}"
            assert "-m ifl." not in shell.replace("-m ifl.cli", ""), f"{stem}.smk rule {rule}"
            out[(stem, rule)] = found
    return out


def test_the_cli_modules_are_the_rule_files():
    files = included_rule_files()
    with_rules = [
        s for s in files if shell_commands((REPO_ROOT / f"workflow/rules/{s}.smk").read_text())
    ]
    assert list(STAGES) == [s for s in with_rules if s not in ("common", "paper_common")]
    assert not set(files) - set(STAGES) - {"common", "paper_common"}


def test_every_rule_runs_a_subcommand_of_its_rule_files_module():
    commands = subcommands()
    owner: dict[str, str] = {}  # subcommand -> the first rule file (include order) running it
    calls = rule_subcommands()
    for (stem, rule), names in calls.items():
        for name in names:
            assert name in commands, f"{stem}.smk rule {rule}: no subcommand {name!r}"
            owner.setdefault(name, stem)
    for name, stem in owner.items():
        assert commands[name][0] == stem, f"{name} is in ifl.cli.{commands[name][0]}, not {stem}"
    # the parser found every shell command of the rule files
    shells = sum(
        (REPO_ROOT / f"workflow/rules/{stem}.smk").read_text().count("shell:")
        for stem in included_rule_files()
    )
    assert len(calls) == shells
    # no subcommand that no rule runs
    assert set(commands) == set(owner)


def test_the_rule_parser_reads_concatenated_shell_strings():
    smk = (
        "rule a:\n    input:\n        'x'\n    shell:\n"
        '        "$IFL_PYTHON -m ifl.cli --config {params.cfg} one --out {output}"\n'
        '        " > {log} 2>&1"\n\n\n'
        "if X:\n\n    rule b:\n        shell:\n"
        '            "$IFL_PYTHON {params.launch} --config {params.cfg} two"\n'
        'rule c:\n    shell:\n        "cp {input} {output}"\n'
        '        + (" --x" if Y else "")\n'
    )
    shells = shell_commands(smk)
    assert shells["a"].endswith("--out {output} > {log} 2>&1")
    assert shells["c"] == "cp {input} {output} --x"
    assert [CALL.findall(shells[r]) for r in "abc"] == [["one"], ["two"], []]


def test_python_m_ifl_cli_and_its_errors(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "ifl.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "stage2" in res.stdout and "remedies-merge" in res.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("grid:\n  - {llm: vicnua, vision: clip, data: en}\n")
    assert main(["--config", str(bad), "fidelity", "--measured", "m", "--out", "o"]) == 2
    with pytest.raises(SystemExit):
        main(["--config", str(bad), "no-such-command"])
