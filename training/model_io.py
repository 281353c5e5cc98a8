"""The model a training run starts from, and the model it writes.

- ``open_model``: the open_clip model to fine-tune (``init``: an open_clip model id, loaded in fp32 on
  the CPU and copied, so the cached embedder is never trained in place) or a new, randomly initialised
  one of an architecture, with its preprocessing and tokenizer.
- ``save_model``: an open_clip ``local-dir`` model, ``open_clip_config.json`` (architecture and
  preprocessing) beside ``open_clip_model.safetensors``, loadable as ``open_clip:local-dir:<out>``;
  ``save_record`` writes the run's ``training.json`` beside it.
- ``seed_all``: Python's, numpy's and torch's generators seeded alike (a run is deterministic for a
  seed on a given machine).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pinembed.embedders import get_embedder
from pinembed.embedders.open_clip_embedder import CONFIG_DIR, OpenClipEmbedder
from pinembed.errors import UsageError

if TYPE_CHECKING:
    from .train import TrainConfig


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's and torch's random generators with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def architecture(arch: str) -> str:
    """The open_clip config name of ``arch`` (a name, or a JSON config file, which gets registered)."""
    import open_clip

    if CONFIG_DIR not in open_clip.factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(CONFIG_DIR)
    if arch.endswith(".json"):
        path = Path(arch)
        if not path.is_file():
            raise UsageError(f"architecture file {arch!r} does not exist")
        open_clip.add_model_config(path)
        arch = path.stem
    if arch not in open_clip.list_models():
        raise UsageError(f"unknown open_clip architecture {arch!r}", "give a name from open_clip.list_models() "
                         "or a JSON config file (see embedders/model_configs/)")
    return arch


def open_model(cfg: TrainConfig) -> tuple[Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """(model, preprocess, tokenizer, model_cfg, preprocess_cfg), fp32 on the CPU: ``cfg.init``'s model
    (a copy), else a new one of architecture ``cfg.arch``."""
    import open_clip

    if cfg.init:
        emb = get_embedder(cfg.init, "cpu", "fp32")  # training needs the fp32 weights, never int8
        if not isinstance(emb, OpenClipEmbedder):
            raise UsageError(f"--init {cfg.init!r} is not an open_clip model", "fine-tuning takes open_clip models")
        model = copy.deepcopy(emb.model).float()  # never train the cached embedder in place
        model_cfg = {**(emb.model_cfg or {}), "quick_gelu": emb.quick_gelu}
        return model, emb.preprocess, emb.tokenizer, model_cfg, dict(emb.preprocess_cfg)
    arch = architecture(cfg.arch)
    logging.disable(logging.WARNING)  # open_clip warns that a new model starts random: that is the point
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch)
    finally:
        logging.disable(logging.NOTSET)
    return (model, preprocess, open_clip.get_tokenizer(arch), open_clip.get_model_config(arch),
            dict(open_clip.get_model_preprocess_cfg(model)))


def save_model(state: dict[str, Any], out: str | os.PathLike[str], model_cfg: dict[str, Any],
               preprocess_cfg: dict[str, Any], dtype: str = "fp32") -> Path:
    """Write an open_clip local-dir model (``open_clip_config.json`` + ``open_clip_model.safetensors``)
    from a state dict; returns the folder."""
    import torch
    from safetensors.torch import save_file

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    to = torch.float16 if dtype == "fp16" else torch.float32
    tensors = {k: v.detach().to(to).contiguous().clone() for k, v in state.items()}
    tmp = out_dir / "open_clip_model.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out_dir / "open_clip_model.safetensors")  # only our own file is replaced
    (out_dir / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": model_cfg, "preprocess_cfg": _jsonable(preprocess_cfg)}, indent=2))
    return out_dir


def save_record(out_dir: Path, record: dict[str, Any]) -> None:
    """Write what a run did (its config and figures) as ``training.json`` beside the weights, with the
    torch threads and CPUs it ran on."""
    import torch

    meta = {**record, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    (out_dir / "training.json").write_text(json.dumps(meta, indent=2))


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
