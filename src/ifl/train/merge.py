"""Model merging (Pikabea et al. 2025): interpolate a fine-tuned LLaVA's language model with
the original LLM backbone it was built from, keeping the vision tower and the projector.

For every language-model tensor ``merged = (1 - alpha) * fine_tuned + alpha * original``:
``alpha = 0`` is the fine-tuned VLM and ``alpha = 1`` puts the original LLM's weights back
(with the stage-2 projector), both bit for bit. Computed in float32 and cast back to the
VLM's dtype.

The checkpoints are read with ``safetensors.safe_open`` one tensor at a time and written one
shard at a time with the VLM's own sharding (its index file stays valid), so a 7B or 13B pair
needs about one shard of memory and never a GPU. Key names: LLaVA checkpoints store the
language model as ``model.language_model.*`` (transformers >= 4.52 in memory) or
``language_model.model.*`` (the format written to disk and used by the llava-hf hub
checkpoints), the head as ``lm_head.weight`` or ``language_model.lm_head.weight``; the causal
LM stores ``model.*`` and ``lm_head.weight``. A tied head (no ``lm_head.weight`` on disk) is
handled on both sides. Extra embedding rows of the VLM (e.g. the added ``<image>`` token) keep
their fine-tuned values. The original LLM may also be a PyTorch ``*.bin`` checkpoint (older hub
releases such as the first lmsys/vicuna-7b-v1.5 revisions): its shards are memory-mapped one at
a time (``torch.load(mmap=True, weights_only=True)``), so memory stays at about one shard too.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ifl.io import atomic_dir

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"
HEAD = "lm_head.weight"
EMBED = "model.embed_tokens.weight"
_LM_PREFIXES = ("model.language_model.", "language_model.model.")
_HEADS = ("lm_head.weight", "language_model.lm_head.weight")


def llm_key(vlm_key: str) -> str | None:
    """The causal LM's name of a LLaVA tensor, or None for vision tower / projector tensors."""
    if vlm_key in _HEADS:
        return HEAD
    for prefix in _LM_PREFIXES:
        if vlm_key.startswith(prefix):
            return "model." + vlm_key[len(prefix) :]
    return None


def shard_map(ckpt: str | Path, *, allow_bin: bool = False) -> dict[str, str]:
    """Tensor name -> shard file name of a safetensors checkpoint directory (sharded or not);
    with ``allow_bin``, of a PyTorch ``*.bin`` checkpoint when there is no safetensors one."""
    ckpt = Path(ckpt)
    if (ckpt / INDEX).is_file():
        weight_map = json.loads((ckpt / INDEX).read_text(encoding="utf-8"))["weight_map"]
        return dict(weight_map)
    if (ckpt / SINGLE).is_file():
        with safe_open(ckpt / SINGLE, framework="pt") as f:
            return dict.fromkeys(f.keys(), SINGLE)
    if allow_bin and (ckpt / BIN_INDEX).is_file():
        return dict(json.loads((ckpt / BIN_INDEX).read_text(encoding="utf-8"))["weight_map"])
    if allow_bin and (ckpt / BIN_SINGLE).is_file():
        return dict.fromkeys(_load_bin(ckpt / BIN_SINGLE), BIN_SINGLE)
    raise ValueError(f"no safetensors checkpoint ({SINGLE} or {INDEX}) in {str(ckpt)!r}")


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    """A PyTorch shard, memory-mapped (tensors are read from disk when touched)."""
    return torch.load(path, map_location="cpu", mmap=True, weights_only=True)


def interpolate(tuned: torch.Tensor, original: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(1 - alpha) * tuned + alpha * original`` in float32, in ``tuned``'s dtype.

    The end points return the inputs themselves, so alpha 0 and 1 are exact. When ``tuned``
    has more rows (an embedding or head with added tokens), only the shared rows are merged.
    """
    if tuned.shape != original.shape:
        extra_rows = (
            tuned.ndim == 2 and original.ndim == 2 and tuned.shape[1] == original.shape[1]
            and tuned.shape[0] > original.shape[0]
        )  # fmt: skip
        if not extra_rows:
            raise ValueError(
                f"cannot merge shapes {tuple(tuned.shape)} and {tuple(original.shape)}"
            )
        n = original.shape[0]
        return torch.cat([interpolate(tuned[:n], original, alpha), tuned[n:]])
    if alpha == 0:
        return tuned
    if alpha == 1:
        return original.to(tuned.dtype)
    mixed = (1.0 - alpha) * tuned.to(torch.float32) + alpha * original.to(torch.float32)
    return mixed.to(tuned.dtype)


class _Reader:
    """Lazily opened safetensors shards of one checkpoint, one tensor read at a time."""

    def __init__(self, ckpt: Path, stack: ExitStack) -> None:
        self.ckpt, self.stack = ckpt, stack
        self.where = shard_map(ckpt, allow_bin=True)
        self._open: dict[str, Any] = {}
        self._bin: tuple[str, dict[str, torch.Tensor]] = ("", {})  # the one mapped *.bin shard

    def get(self, key: str) -> torch.Tensor:
        shard = self.where[key]
        if shard.endswith(".bin"):
            if self._bin[0] != shard:
                self._bin = (shard, _load_bin(self.ckpt / shard))
            return self._bin[1][key]
        if shard not in self._open:
            self._open[shard] = self.stack.enter_context(
                safe_open(self.ckpt / shard, framework="pt")
            )
        return self._open[shard].get_tensor(key)


def _check_alpha(alpha: float) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise ValueError(f"merge alpha must be a number in [0, 1], got {alpha!r}")
    return float(alpha)


def _check_heads(vlm_keys: set[str], llm: _Reader) -> None:
    """A tied VLM head cannot hold an untied original head (that would change the architecture)."""
    vlm_has_head = any(k in vlm_keys for k in _HEADS)
    if vlm_has_head or HEAD not in llm.where:
        return
    if not torch.equal(llm.get(HEAD), llm.get(EMBED)):
        raise ValueError(
            "the VLM ties lm_head to the embeddings but the LLM's lm_head is untied; cannot merge"
        )


def merge_llm(
    vlm_dir: str | Path, llm_dir: str | Path, alpha: float, out_dir: str | Path
) -> dict[str, Any]:
    """Write the LLaVA at ``vlm_dir`` with its language model interpolated towards ``llm_dir``.

    ``llm_dir`` is the LlamaForCausalLM (safetensors) the VLM was built from. Every file of
    ``vlm_dir`` other than the weights (config, processor, tokenizer, chat template) is copied;
    ``merge.json`` records alpha and the counts. The output directory appears atomically.
    Returns the record written to ``merge.json``.
    """
    alpha = _check_alpha(alpha)
    vlm_dir, llm_dir = Path(vlm_dir), Path(llm_dir)
    vlm_where = shard_map(vlm_dir)
    merged, copied, used = 0, 0, set()
    with ExitStack() as stack, atomic_dir(out_dir) as tmp:
        llm = _Reader(llm_dir, stack)
        _check_heads(set(vlm_where), llm)
        for shard in sorted(set(vlm_where.values())):
            out: dict[str, torch.Tensor] = {}
            with safe_open(vlm_dir / shard, framework="pt") as f:
                metadata = f.metadata() or {"format": "pt"}
                for key in f.keys():  # noqa: SIM118 - safe_open handles are not mappings
                    tensor = f.get_tensor(key)
                    target = llm_key(key)
                    if target is None:
                        out[key], copied = tensor, copied + 1
                        continue
                    if target == HEAD and HEAD not in llm.where:
                        target = EMBED  # the original LLM ties its head to the embeddings
                    if target not in llm.where:
                        raise ValueError(
                            f"VLM tensor {key!r} has no counterpart {target!r} in {str(llm_dir)!r}"
                        )
                    out[key] = interpolate(tensor, llm.get(target), alpha).contiguous()
                    used.add(target)
                    merged += 1
            save_file(out, tmp / shard, metadata=metadata)
            del out
        unused = sorted(set(llm.where) - used - {HEAD})
        if unused:
            raise ValueError(
                f"LLM tensor {unused[0]!r} has no counterpart in the VLM {str(vlm_dir)!r}"
            )
        for item in sorted(vlm_dir.iterdir()):
            if item.is_file() and not item.name.endswith(".safetensors"):
                shutil.copy2(item, tmp / item.name)
        record = {
            "alpha": alpha,
            "vlm": str(vlm_dir),
            "llm": str(llm_dir),
            "merged_tensors": merged,
            "copied_tensors": copied,
        }
        (tmp / "merge.json").write_text(
            json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return record
