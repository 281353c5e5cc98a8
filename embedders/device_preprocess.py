"""JPEG bytes -> model input on the model's device, in batches: decode (nvJPEG on CUDA, libjpeg on a CPU),
resize, crop and normalise as the model's own transform does, grouped by size so each group is one call.

The decoder is TorchCodec's ``decode_jpeg`` (the maintained path since torchvision 0.29 deprecated its
image decoders; ``pip install 'pinembed[gpu]'``), else torchvision's. Both take a list in one call
(one nvJPEG batch on CUDA) and turn images upright by their EXIF orientation.

The CPU pipeline (PIL) stays the reference: ``OpenClipEmbedder.device_preprocessor`` builds this only for
transforms it reproduces (open_clip's ``shortest`` and ``squash`` resize modes, bicubic or bilinear,
antialiased like PIL). A file the batch decoder refuses is named in ``failed``, so the caller decodes it
on the CPU path alone; one bad file never fails the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MODES = ("shortest", "squash")  # open_clip resize modes reproduced here


@dataclass(frozen=True)
class Encoded:
    """A JPEG's bytes, read and checked (size, pixels, format) but not decoded: the embed stage decodes
    a batch of them at once on the model's device."""

    data: bytes
    max_pixels: int  # the read stage's limit, for the CPU path if the device decoder refuses the file

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class DevicePreprocess:
    """The model's eval transform for batches of JPEG bytes, on ``device`` (see the module's docstring)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    device: str = "cpu"
    dtype: Any = None  # torch dtype of the output (the model's input dtype); None: float32
    backend: str = ""  # "torchcodec" or "torchvision"; "": TorchCodec when installed

    def decode(self, blobs: Sequence[bytes]) -> tuple[list[Any | None], list[int]]:
        """(RGB uint8 tensors (3, H, W) on the device, upright by EXIF, or None where decoding failed,
        the indexes that failed). One batched call; when it raises, each file is tried alone."""
        import torch

        decode = jpeg_decoder(self.backend)
        data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
        try:
            out: list[Any | None] = list(decode(data, self.device)) if data else []
        except Exception:
            out = []
            for d in data:
                try:
                    out.append(decode([d], self.device)[0])
                except Exception:
                    out.append(None)
        return out, [i for i, t in enumerate(out) if t is None]

    def transform(self, images: Sequence[Any]) -> list[Any]:
        """Decoded uint8 images (3, H, W) -> normalised model inputs (3, size, size), in input order.
        Images of one size are resized in one call."""
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        interp = InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255.0
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            groups.setdefault(tuple(im.shape[-2:]), []).append(i)
        out: list[Any] = [None] * len(images)
        for idx in groups.values():
            batch = torch.stack([images[i] for i in idx]).float()
            if self.resize_mode == "squash":
                batch = F.resize(batch, [self.size, self.size], interpolation=interp, antialias=True)
            else:  # the shorter side to ``size`` (as torchvision's Resize(int) computes it), then the centre
                batch = F.resize(batch, [self.size], interpolation=interp, antialias=True)
                batch = F.center_crop(batch, [self.size, self.size])
            batch = ((batch.clamp_(0, 255) - mean) / std).to(self.dtype or torch.float32)
            for j, i in enumerate(idx):
                out[i] = batch[j]
        return out

    def __call__(self, blobs: Sequence[bytes]) -> tuple[list[Any | None], list[int]]:
        """Model inputs for JPEG ``blobs`` (None where the batch decoder failed), and the failed indexes.
        On CUDA the work runs on a side stream and is complete on return, so a thread can prepare the
        next batch while the model runs on the current one."""
        if not str(self.device).startswith("cuda"):
            return self._run(blobs)
        import torch

        stream = torch.cuda.Stream(device=self.device)
        with torch.cuda.stream(stream):
            out = self._run(blobs)
        stream.synchronize()
        return out

    def _run(self, blobs: Sequence[bytes]) -> tuple[list[Any | None], list[int]]:
        decoded, failed = self.decode(blobs)
        good = [i for i, t in enumerate(decoded) if t is not None]
        inputs = self.transform([decoded[i] for i in good])
        out: list[Any | None] = [None] * len(blobs)
        for i, t in zip(good, inputs, strict=True):
            out[i] = t
        return out, failed


def backend_in_use(backend: str = "") -> str:
    """The decoder ``jpeg_decoder(backend)`` uses: "torchcodec" or "torchvision"."""
    if backend:
        return backend
    try:
        import torchcodec.decoders  # noqa: F401

        return "torchcodec"
    except Exception:
        return "torchvision"


def jpeg_decoder(backend: str = "") -> Any:
    """``decode(list of uint8 tensors, device) -> list of RGB uint8 (3, H, W)``, upright by EXIF, from
    TorchCodec (``backend`` "torchcodec", or "" when it imports) or torchvision ("torchvision")."""
    if backend in ("", "torchcodec"):
        try:
            from torchcodec.decoders import decode_jpeg as codec_decode

            return lambda data, device: codec_decode(list(data), mode="RGB", device=device)
        except Exception:  # not installed, or built for another torch
            if backend:
                raise
    import warnings

    from torchvision.io import ImageReadMode
    from torchvision.io import decode_jpeg as tv_decode

    def decode(data: Any, device: Any) -> Any:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of TorchCodec
            warnings.simplefilter("ignore", DeprecationWarning)
            return tv_decode(list(data), mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)

    return decode


def for_open_clip(cfg: dict[str, Any], device: str, dtype: Any) -> DevicePreprocess | None:
    """The device transform matching open_clip's eval transform ``cfg`` (its preprocess config), or None
    where it does not reproduce that transform (then the CPU path is used)."""
    size = cfg.get("size", 224)
    if isinstance(size, (tuple, list)):
        if len(set(size)) != 1:
            return None
        size = size[0]
    mode = cfg.get("resize_mode") or "shortest"
    interp = cfg.get("interpolation") or "bicubic"
    if mode not in MODES or interp not in ("bicubic", "bilinear") or cfg.get("mode", "RGB") != "RGB":
        return None
    mean, std = tuple(cfg.get("mean") or ()), tuple(cfg.get("std") or ())
    if len(mean) != 3 or len(std) != 3:
        return None
    return DevicePreprocess(int(size), mean, std, interp, mode, device, dtype)
