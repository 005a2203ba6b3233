"""The paper preset's downloads (workflow/rules/paper_download.smk), on the login node."""

from __future__ import annotations

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command("paper-stage", ("--repo-type", REQ), ("--repo-id", REQ))
def _stage(a, cfg):
    """Download one hub repository into resources/ (login node; marker written last)."""
    from ifl import paper
    from ifl.download import HubError, stage

    try:
        print(stage(paper.find_asset(cfg, a.repo_type, a.repo_id), cfg["resources_dir"]))
    except HubError as err:  # already one line naming the repository: no traceback
        raise ValueError(str(err)) from err
