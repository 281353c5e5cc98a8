"""open_clip models: ``open_clip:<arch>/<pretrained tag | checkpoint path>`` or ``open_clip:hf-hub:<repo>``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pinembed.errors import ModelNotFoundError

from . import hub
from .auto_precision import settle_precision
from .base import Embedder, l2_normalise, weights_digest
from .cuda_graphs import TextGraphs
from .device import pick_device, pick_precision
from .device_preprocess import for_open_clip

#: Architectures that ship with pinembed (tiny test model, the bundled nano model).
CONFIG_DIR = Path(__file__).parent / "model_configs"


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``<arch>/<pretrained>`` into (arch, pretrained); ``hf-hub:`` and ``local-dir:`` keep their
    slashes (a local dir is made absolute, so the id means the same from any folder)."""
    if spec.startswith("local-dir:"):
        return "local-dir:" + os.path.abspath(os.path.expanduser(spec[len("local-dir:"):])), None
    if spec.startswith("hf-hub:"):
        return spec, None
    arch, sep, pretrained = spec.partition("/")
    return arch, (pretrained if sep and pretrained else None)


def _fetch_hint(arch: str, pretrained: str | None) -> str:
    return (
        "pinembed needs these weights on this machine. Either run once where the network reaches the "
        "Hugging Face hub (open_clip caches them under $HF_HOME, default ~/.cache/huggingface), copy that "
        "cache here, or point at a local checkpoint file: "
        f"--model open_clip:{arch}//path/to/weights.pt (or .safetensors)."
    )


def _fail_fast_offline(arch: str, pretrained: str | None, tag_cfg: dict[str, Any]) -> None:
    """ModelNotFoundError at once when the weights of a pretrained tag (or an ``hf-hub:`` model) are
    neither in the cache nor fetchable now, instead of a minute of retries (see ``hub``)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    local = "open_clip:<arch>//path/to/weights.pt" if arch.startswith("hf-hub:") else f"open_clip:{arch}//path/to/weights.pt"
    what = f"open_clip:{arch}" + (f"/{pretrained}" if pretrained else "")
    if arch.startswith("hf-hub:"):
        problem = hub.missing(arch[len("hf-hub:"):], ["open_clip_config.json"])
    elif tag_cfg.get("hf_hub") and not tag_cfg.get("file"):
        repo, name = os.path.split(tag_cfg["hf_hub"])  # "org/model/" means the default file name
        name = name or HF_WEIGHTS_NAME
        safe = HF_SAFE_WEIGHTS_NAME if name == HF_WEIGHTS_NAME else os.path.splitext(name)[0] + ".safetensors"
        problem = hub.missing(repo, [safe, name])
    elif tag_cfg.get("url") and not tag_cfg.get("file"):  # open_clip caches URL downloads in ~/.cache/clip
        if os.path.isfile(os.path.expanduser(f"~/.cache/clip/{os.path.basename(tag_cfg['url'])}")):
            return
        reason = hub.unreachable_reason(tag_cfg["url"])
        problem = f"they are not in ~/.cache/clip and {reason}" if reason else None
    else:
        return
    if problem:
        raise ModelNotFoundError(f"the weights of {what} are not on this machine: {problem}", hub.fixes(local))


class OpenClipEmbedder(Embedder):
    """An open_clip CLIP model with its own preprocessing and tokenizer."""

    def __init__(self, spec: str, device: str | None = None, precision: str | None = None) -> None:
        import open_clip
        import torch

        arch, pretrained = parse_spec(spec)
        if CONFIG_DIR not in getattr(open_clip.factory, "_MODEL_CONFIG_PATHS", []):
            open_clip.add_model_config(CONFIG_DIR)
        if not arch.startswith(("hf-hub:", "local-dir:")):
            if arch not in open_clip.list_models():
                raise ModelNotFoundError(
                    f"open_clip has no architecture named {arch!r}",
                    "run `python -c 'import open_clip; print(open_clip.list_models())'` for the names, "
                    "e.g. open_clip:ViT-B-32/laion2b_s34b_b79k",
                )
            if not pretrained:
                raise ModelNotFoundError(
                    f"open_clip model {arch!r} needs weights: a pretrained tag or a checkpoint path",
                    f"e.g. open_clip:{arch}/<tag> with a tag from open_clip.list_pretrained_tags_by_model("
                    f"{arch!r}), or open_clip:{arch}//path/to/weights.pt",
                )
        if pretrained and not open_clip.get_pretrained_cfg(arch, pretrained):
            # not a known tag: a checkpoint path, made absolute so the id means the same from any folder
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise ModelNotFoundError(
                    f"open_clip model {arch!r}: {pretrained!r} is neither a pretrained tag of {arch} "
                    "nor a checkpoint file",
                    f"known tags: {', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'}; "
                    "or give an existing checkpoint path.",
                )
            pretrained = str(path.resolve())
        # Weights trained with QuickGELU (OpenAI's) give silently wrong vectors in a GELU model:
        # follow the tag's own setting, as open_clip's "-quickgelu" configs do.
        tag_cfg = (open_clip.get_pretrained_cfg(arch, pretrained) or {}) if pretrained else {}
        arch_cfg = open_clip.get_model_config(arch) or {}
        self.quick_gelu = bool(tag_cfg.get("quick_gelu", arch_cfg.get("quick_gelu", False)))
        _fail_fast_offline(arch, pretrained, tag_cfg)
        self.device = pick_device(device)
        self.precision = pick_precision(self.device, precision)
        try:
            with hub.quiet():
                model, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=pretrained, device=self.device, require_pretrained=True,
                    force_quick_gelu=self.quick_gelu and not arch_cfg.get("quick_gelu", False),
                )
        except Exception as e:  # open_clip raises RuntimeError/OSError/HF errors for missing weights
            raise ModelNotFoundError(
                f"could not load open_clip model {arch!r} with weights {pretrained!r}: {hub.brief(e)}",
                _fetch_hint(arch, pretrained),
            ) from e
        model.eval()
        # The digest is taken from the fp32 weights, so a database built on a GPU (fp16) opens on a CPU.
        self._digest = weights_digest(model)
        self.tokenizer = open_clip.get_tokenizer(arch)
        model, self.dtype, self.precision, self.precision_check = settle_precision(
            model, self.precision, self._digest, _prepare(preprocess, self.tokenizer), _forward)
        self.model = model
        self.arch = arch
        self.model_cfg = _model_cfg(open_clip, arch)
        self._preprocess = preprocess
        self.model_id = f"open_clip:{arch}" + (f"/{pretrained}" if pretrained else "")
        self.preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
        size = self.preprocess_cfg.get("size", 224)
        self.image_size = int(size if isinstance(size, int) else max(size))
        with torch.inference_mode():
            probe = model.encode_text(self.tokenizer(["probe"]).to(self.device))
        self.dim = int(probe.shape[-1])

    def preprocess(self, image: Any) -> Any:
        """open_clip's own eval transform for these weights."""
        return self._preprocess(image)

    def preprocessor(self) -> Any:
        """The eval transform alone (torchvision transforms pickle without the model)."""
        return self._preprocess

    def device_preprocessor(self) -> Any:
        """Batched JPEG decoding and this model's eval transform on its device (None for transforms that
        ``device_preprocess`` does not reproduce)."""
        return for_open_clip(self.preprocess_cfg, self.device, self.dtype)

    def embed_pixels(self, pixels: Sequence[Any]) -> np.ndarray:
        """One forward pass over a batch of preprocessed tensors."""
        import torch

        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = torch.stack(list(pixels)).to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            out = self.model.encode_image(batch)
        return l2_normalise(out.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One forward pass over a batch of texts (the tokenizer truncates to the context length)."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts)).to(self.device)
        graphs = self._graphs(tokens.shape[-1])
        with torch.inference_mode():
            if graphs is not None and graphs.fits(len(texts)):  # a query on CUDA: a replayed graph
                out = graphs(tokens)
            else:
                out = self.model.encode_text(tokens)
        return l2_normalise(out.float().cpu().numpy())

    def _graphs(self, context_length: int) -> Any:
        """The text tower's CUDA graphs for small batches (made on first use; None off CUDA, or with
        ``$PINEMBED_CUDA_GRAPHS=0``)."""
        graphs = getattr(self, "_text_graphs", None)
        if graphs is None and str(self.device).startswith("cuda") and os.environ.get("PINEMBED_CUDA_GRAPHS") != "0":
            graphs = self._text_graphs = TextGraphs(self.model.encode_text, context_length, self.device)
        return graphs

    def identity(self) -> dict[str, Any]:
        """Model id, dim, weights digest and the preprocessing tied to these weights."""
        return {
            "model_id": self.model_id,
            "dim": self.dim,
            "weights_digest": self._digest,
            "preprocess": {k: _jsonable(v) for k, v in sorted(self.preprocess_cfg.items())},
            "quick_gelu": self.quick_gelu,
            "precision": self.precision,  # recorded, not compared: every precision shares the space
        }


def _prepare(preprocess: Any, tokenizer: Any) -> Any:
    """The auto-precision check's input maker: (images, texts) -> (pixels, tokens)."""
    import torch

    return lambda images, texts: (torch.stack([preprocess(im) for im in images]), tokenizer(texts))


def _forward(model: Any, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
    """The auto-precision check's forward pass (on a CPU): image and text vectors."""
    import torch

    pixels, tokens = inputs
    with torch.inference_mode():
        img, txt = model.encode_image(pixels), model.encode_text(tokens)
    return l2_normalise(img.float().numpy()), l2_normalise(txt.float().numpy())


def _model_cfg(open_clip: Any, arch: str) -> dict[str, Any] | None:
    """The architecture config behind ``arch`` (a name or a local-dir)."""
    if arch.startswith("local-dir:"):
        import json

        return json.loads((Path(arch[len("local-dir:"):]) / "open_clip_config.json").read_text())["model_cfg"]
    return open_clip.get_model_config(arch)


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, os.PathLike):
        return str(v)
    return v
