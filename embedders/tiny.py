"""A tiny random-weight open_clip model (``pinembed-tiny``), for tests and the offline demo.

It has the real architecture and goes through open_clip's real loading code; its vectors carry
colour and layout, not meaning.
"""

from __future__ import annotations

from pathlib import Path

from .open_clip_embedder import CONFIG_DIR

TINY_ARCH = "pinembed-tiny"


def make_tiny_checkpoint(path: str | Path, seed: int = 0, arch: str = TINY_ARCH) -> str:
    """Create ``arch`` with random weights from ``seed``, save its state dict at ``path``, return the
    model id that loads it (``open_clip:<arch>/<absolute path>``)."""
    import open_clip
    import torch

    path = Path(path).resolve()
    if not path.exists():
        if CONFIG_DIR not in open_clip.factory._MODEL_CONFIG_PATHS:
            open_clip.add_model_config(CONFIG_DIR)
        torch.manual_seed(seed)
        model = open_clip.create_model(arch)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return f"open_clip:{arch}/{path}"


if __name__ == "__main__":
    import sys

    print(make_tiny_checkpoint(sys.argv[1] if len(sys.argv) > 1 else "tiny.pt"))
