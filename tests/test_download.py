"""Tests for ifl.download against a local fake of the hub's HTTP API (no network needed)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from _paper_fixtures import GLOTLID_LABELS, build_glotlid

from ifl.download import (
    GLOTLID,
    MARKER,
    Asset,
    HubError,
    extract_zip,
    is_staged,
    local_dir,
    mark_staged,
    model_asset,
    paper_assets,
    require_staged,
    stage,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHA = "0123456789abcdef0123456789abcdef01234567"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


class FakeHub:
    """Serves a few repositories the way huggingface.co's API does, or a gated/missing error."""

    def __init__(self, repos: dict[str, dict[str, bytes]], errors: dict[str, str] | None = None):
        self.repos, self.errors, self.requests = repos, errors or {}, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                hub.requests.append(self.path)
                code, body, headers = hub.answer(self.path.split("?")[0])
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def answer(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        for repo, code in self.errors.items():
            if repo in path:
                status = 403 if code == "GatedRepo" else 404
                return status, b'{"error": "no"}', {"X-Error-Code": code, "X-Error-Message": code}
        for repo, files in self.repos.items():
            if f"/{repo}/tree/" in path:
                tree = [
                    {"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                    for f, b in files.items()
                ]
                return 200, json.dumps(tree).encode(), {"Content-Type": "application/json"}
            if f"/{repo}/revision/" in path:
                info = {"id": repo, "sha": SHA, "siblings": [{"rfilename": f} for f in files]}
                return 200, json.dumps(info).encode(), {"Content-Type": "application/json"}
            if path.startswith(f"/{repo}/resolve/") or path.startswith(
                f"/datasets/{repo}/resolve/"
            ):
                name = path.split("/resolve/", 1)[1].split("/", 1)[1]
                body = files[name]
                return (
                    200,
                    body,
                    {"X-Repo-Commit": SHA, "ETag": f'"{hashlib.sha1(body).hexdigest()}"'},
                )
        return 404, b"{}", {"X-Error-Code": "RepoNotFound"}

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def hub():
    fake = FakeHub(
        {
            "llava-hf/tiny": {
                "config.json": b"{}",
                "model.safetensors": b"s" * 8,
                "pytorch_model.bin": b"b" * 8,
            },
            "old/tiny": {
                "config.json": b"{}",
                "pytorch_model.bin": b"b" * 8,
                "flax_model.msgpack": b"f",
            },
            "liuhaotian/tiny-pretrain": {
                "data.json": b"[]",
                "images.zip": _zip({"00000/1.jpg": b"jpg"}),
            },
        },
        errors={"google/gated": "GatedRepo"},
    )
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def online(monkeypatch):
    """Hub access on (the suite may run with HF_HUB_OFFLINE=1, read by huggingface_hub at import)."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_asset_validation():
    with pytest.raises(ValueError, match="repo_type 'space'"):
        Asset("a/b", "space")
    with pytest.raises(ValueError, match="repo_id 'llava' is not of the form 'owner/name'"):
        Asset("llava")


def test_layout(tmp_path):
    assert (
        local_dir(model_asset("llava-hf/llava-1.5-7b-hf"), tmp_path)
        == tmp_path / "models/llava-hf/llava-1.5-7b-hf"
    )
    assert (
        local_dir(Asset("floschne/maxm", "dataset"), tmp_path)
        == tmp_path / "datasets/floschne/maxm"
    )


def test_stage_prefers_safetensors_and_writes_the_marker_last(hub, tmp_path):
    asset = model_asset("llava-hf/tiny")
    assert not is_staged(asset, tmp_path)
    path = stage(asset, tmp_path, endpoint=hub.url)
    assert sorted(p.name for p in path.iterdir() if p.is_file()) == [
        MARKER,
        "config.json",
        "model.safetensors",
    ]
    record = json.loads((path / MARKER).read_text())
    assert record["repo_id"] == "llava-hf/tiny" and record["files"] == [
        "config.json",
        "model.safetensors",
    ]
    n = len(hub.requests)
    assert (
        stage(asset, tmp_path, endpoint=hub.url) == path and len(hub.requests) == n
    )  # no second download
    old = stage(model_asset("old/tiny"), tmp_path, endpoint=hub.url)
    assert (old / "pytorch_model.bin").is_file() and not (old / "flax_model.msgpack").exists()


def test_stage_extracts_archives(hub, tmp_path):
    asset = Asset("liuhaotian/tiny-pretrain", "model", extract=("images.zip",))
    path = stage(asset, tmp_path, endpoint=hub.url)
    assert (path / "00000" / "1.jpg").read_bytes() == b"jpg" and not (path / "images.zip").exists()


def test_gated_and_missing_repositories_are_one_line_errors(hub, tmp_path):
    with pytest.raises(HubError) as gated:
        stage(model_asset("google/gated"), tmp_path, endpoint=hub.url)
    msg = str(gated.value)
    assert "'google/gated'" in msg and "gated" in msg and "HF_TOKEN" in msg and "\n" not in msg
    with pytest.raises(HubError, match=r"model 'nobody/nothing': not found on the hub") as missing:
        stage(model_asset("nobody/nothing"), tmp_path, endpoint=hub.url)
    assert "\n" not in str(missing.value)
    assert not is_staged(model_asset("google/gated"), tmp_path)


def test_unreachable_hub_is_a_one_line_error(tmp_path):
    # a dataset: model assets first list the repository's files, which huggingface_hub retries
    # with backoff (~20 s) before giving up
    asset = Asset("floschne/maxm", "dataset")
    expected = r"cannot download dataset 'floschne/maxm': the Hugging Face hub is unreachable"
    with pytest.raises(HubError, match=expected) as err:
        stage(asset, tmp_path, endpoint="http://127.0.0.1:9")
    assert "\n" not in str(err.value) and not is_staged(asset, tmp_path)


def test_offline_mode_fails_fast_but_staged_assets_still_work(tmp_path, monkeypatch):
    staged = Asset("floschne/maxm", "dataset")
    mark_staged(staged, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert stage(staged, tmp_path) == local_dir(staged, tmp_path)
    with pytest.raises(
        HubError, match=r"cannot download model 'lmsys/vicuna-7b-v1.5': HF_HUB_OFFLINE is set"
    ):
        stage(model_asset("lmsys/vicuna-7b-v1.5"), tmp_path)


def test_hf_hub_offline_in_a_fresh_process(tmp_path):
    code = (
        "import sys\nfrom ifl.download import HubError, model_asset, stage\n"
        "try:\n    stage(model_asset('llava-hf/bakLlava-v1-hf'), sys.argv[1])\n"
        "except HubError as err:\n    print(err)\n    raise SystemExit(3)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 3, res.stderr
    lines = res.stdout.strip().splitlines()
    assert (
        len(lines) == 1 and "'llava-hf/bakLlava-v1-hf'" in lines[0] and "HF_HUB_OFFLINE" in lines[0]
    )


def test_require_staged(tmp_path):
    asset = model_asset("facebook/nllb-200-distilled-1.3B")
    with pytest.raises(ValueError, match="'facebook/nllb-200-distilled-1.3B' is not staged under"):
        require_staged(asset, tmp_path)
    mark_staged(asset, tmp_path)
    assert require_staged(asset, tmp_path) == local_dir(asset, tmp_path)


def test_extract_zip_refuses_path_traversal(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"../outside.txt": b"x"}))
    with pytest.raises(ValueError, match="escapes"):
        extract_zip(archive, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists()


def test_paper_preset_lists_every_asset():
    cfg = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    assets = paper_assets(cfg)
    ids = {k: a.repo_id for k, a in assets.items()}
    assert ids["model:llava-1.5-7b"] == "llava-hf/llava-1.5-7b-hf"
    assert ids["model:llava-1.5-13b"] == "llava-hf/llava-1.5-13b-hf"
    assert ids["model:bakllava"] == "llava-hf/bakLlava-v1-hf"
    assert ids["model:llava-gemma-2b"] == "Intel/llava-gemma-2b"
    assert ids["model:vicuna"] == "lmsys/vicuna-7b-v1.5" and ids["model:yi"] == "01-ai/Yi-6B-Chat"
    assert ids["model:leo"] == "LeoLM/leo-hessianai-7b-chat"
    assert (
        ids["model:clip"] == "openai/clip-vit-large-patch14-336"
        and ids["model:dino"] == "facebook/dinov2-large"
    )
    assert ids["model:translator"] == "facebook/nllb-200-distilled-1.3B"
    assert assets["lid"] == GLOTLID and GLOTLID.allow_patterns[0] == "model_v3.bin"
    datasets = {k: v for k, v in ids.items() if k.startswith("dataset:")}
    assert datasets == {
        "dataset:maxm": "floschne/maxm",
        "dataset:llava-w": "MBZUAI/multilingual-llava-bench-in-the-wild",
        "dataset:visit": "mlfoundations/VisIT-Bench",
        "dataset:multiq": "caro-holt/MultiQ",
        "dataset:llava-pretrain": "liuhaotian/LLaVA-Pretrain",
        "dataset:llava-instruct": "liuhaotian/LLaVA-Instruct-150K",
    }
    assert cfg["lid"]["model"] == str(local_dir(GLOTLID, cfg["resources_dir"]) / "model_v3.bin")
    with pytest.raises(ValueError, match="unknown dataset 'POPE'"):
        paper_assets({"datasets": {"POPE": {}}})


def test_staged_glotlid_stand_in_identifies_languages_offline(tmp_path, monkeypatch):
    from ifl.lid import ISO_TO_NAME, LanguageIdentifier
    from ifl.world.items import describe
    from ifl.world.scenes import sample_scene

    pytest.importorskip("fasttext")
    path = build_glotlid(local_dir(GLOTLID, tmp_path) / "model_v3.bin")
    mark_staged(GLOTLID, tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert stage(GLOTLID, tmp_path) / "model_v3.bin" == path
    lid = LanguageIdentifier(path, kind="glotlid")
    labels, _ = lid.predict(["Das Bild zeigt einen roten Kreis."])
    assert labels[0].endswith(
        ("_Latn", "_Hani", "_Deva", "_Hebr", "_Thai", "_Arab", "_Beng", "_Jpan", "_Cyrl")
    )
    import numpy as np

    rng = np.random.default_rng(12345)  # scenes the model was not trained on
    texts, truth = [], []
    for _ in range(10):
        scene = sample_scene(rng)
        for lang in GLOTLID_LABELS:
            texts.append(describe(scene, lang))
            truth.append(ISO_TO_NAME[lang])
    accuracy = np.mean([p == t for p, t in zip(lid.languages(texts), truth, strict=True)])
    assert accuracy > 0.9
