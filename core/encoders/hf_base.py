"""What every transformers-backed encoder shares: locating weights, dtype, device placement, lazy loading."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from core.encoders.base import Encoder, check_choice
from core.encoders.hub import WeightsNotFound, WeightsSource, locate_weights, missing_weights_message

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class HFModelEncoder(Encoder):
    """A transformers model from a local folder or a cached hub id.

    dtype: "float32" (default), "bfloat16" or "float16" (the last two meant for GPUs).
    device_map: passed to `from_pretrained` (e.g. "auto" to spread a model over several cards, or a
    dict of module -> device where "cpu" and "disk" hold what the cards cannot; uses `accelerate`);
    the inputs then go to the device of the input embeddings. offload_folder: where "disk" layers go.
    load_in_4bit: quantise with bitsandbytes (CUDA only; needs the `bitsandbytes` package).
    """

    auto_class = "AutoModel"

    def __init__(self, model: str | Path, name: str | None = None, device: str = "cpu", dtype: str = "float32",
                 device_map: str | dict | None = None, load_in_4bit: bool = False, revision: str | None = None,
                 batch_size: int = 32, trust_remote_code: bool = False, offload_folder: str | Path | None = None) -> None:
        check_choice("dtype", dtype, sorted(DTYPES))
        self.name = name or f"hf:{model}"
        self.device = torch.device(device)
        self.dtype = dtype
        self.device_map = device_map
        self.offload_folder = None if offload_folder is None else str(offload_folder)
        self.load_in_4bit = load_in_4bit
        self.batch_size = batch_size
        self.trust_remote_code = trust_remote_code
        self.source: WeightsSource = locate_weights(model, self.name, revision=revision)
        self.revision = revision

    def _pretrained_kwargs(self) -> dict[str, Any]:
        local = self.source.is_local
        return {"local_files_only": local, "revision": None if local else self.revision,
                "trust_remote_code": self.trust_remote_code}

    def _load(self, loader: Any, **kwargs) -> Any:
        """`loader.from_pretrained` on our source; a hub failure becomes WeightsNotFound with the fix."""
        try:
            return loader.from_pretrained(self.source.location, **self._pretrained_kwargs(), **kwargs)
        except OSError as exc:
            if self.source.is_local:
                raise
            raise WeightsNotFound(missing_weights_message(self.name, self.source.location)) from exc

    @cached_property
    def hf_config(self):
        """The model's config (no weights loaded)."""
        from transformers import AutoConfig

        return self._load(AutoConfig)

    @cached_property
    def model(self) -> torch.nn.Module:
        """Loaded on first use, so a cache hit never pays for loading weights."""
        import transformers

        kwargs: dict[str, Any] = {"dtype": DTYPES[self.dtype]}
        if self.load_in_4bit:
            kwargs["quantization_config"] = bnb_4bit_config(DTYPES[self.dtype])
            kwargs["device_map"] = self.device_map or {"": str(self.device)}
        elif self.device_map is not None:
            kwargs["device_map"] = self.device_map
            if self.offload_folder is not None:
                kwargs["offload_folder"] = self.offload_folder
        model = self._load(getattr(transformers, self.auto_class), **kwargs).eval()
        return model if "device_map" in kwargs else model.to(self.device)

    @property
    def input_device(self) -> torch.device:
        """Where inputs go: the input embeddings' device when a device_map spread the model."""
        if self.device_map is None and not self.load_in_4bit:
            return self.device
        try:
            first = next(self.model.get_input_embeddings().parameters())
        except (AttributeError, NotImplementedError, StopIteration):
            first = next(self.model.parameters())
        # an offloaded module sits on "meta"; accelerate's hooks bring it and its inputs where it runs
        return torch.device("cpu") if first.device.type == "meta" else first.device

    def weights_config(self) -> dict[str, Any]:
        """The part of `config()` every HF encoder shares."""
        return {**self.source.identity, "dtype": self.dtype, "load_in_4bit": self.load_in_4bit,
                "auto_class": self.auto_class}


def bnb_4bit_config(compute_dtype: torch.dtype):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("load_in_4bit=True needs the bitsandbytes package (CUDA machines): pip install bitsandbytes")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=compute_dtype, bnb_4bit_quant_type="nf4")
