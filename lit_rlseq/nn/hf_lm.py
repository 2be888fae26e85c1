"""A Hugging Face causal LM from a local directory, called like the project's GPT (``lit_rlseq.nn.gpt``).

Optional extra ``hf`` (``transformers``). Nothing is ever downloaded: the directory is one the user saved
(``save_pretrained``) or downloaded themselves, and it is read with ``local_files_only=True``.

    lm = HFCausalLM.from_directory("/models/gpt2")        # weights and config from the directory
    lm = HFCausalLM.from_config(lm.config_dict)           # the same architecture, fresh weights (for checkpoints)
    logits, cache = lm(idx, use_cache=True)               # [B, T, V] and a cache of the positions so far
    logits, cache = lm(next_idx, cache=cache)             # continues the cached sequences
    cache.repeat(n)                                       # the rows tiled n times (a copy), like KVCache.repeat
    generate_with_cache(lm, idx, 40, block_size, top_p=0.95)   # sampling as with the GPT

``hf_tokenizer_json(path)`` gives the directory's tokenizer as a ``tokenizers`` JSON string, so the same
tokenizer code serves the GPT trained from scratch and this one.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lit_rlseq.errors import MissingArtifactError, UserError
INSTALL = "pip install 'lit_rlseq[hf]' (or bin/setup, which installs every extra)"


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise UserError(f"a Hugging Face model needs the `transformers` package: {INSTALL}") from e
    return transformers


def check_model_directory(path: str | Path, what: str = "Hugging Face model directory") -> Path:
    """The directory of a saved causal LM (``config.json`` and weights); clear errors when it is not one."""
    path = Path(path)
    if not path.exists():
        raise MissingArtifactError(
            what, str(path),
            produce_with="model.save_pretrained(path) and tokenizer.save_pretrained(path) of a causal LM you have "
                         "(e.g. a GPT-2 you downloaded yourself); nothing is downloaded here")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise UserError(
            f"{path} is not a Hugging Face model directory: expected a folder with config.json, the weights "
            "(model.safetensors or pytorch_model.bin) and the tokenizer (tokenizer.json), as written by "
            "save_pretrained")
    return path


def hf_tokenizer_json(path: str | Path) -> str:
    """The tokenizer saved in a local model directory, as a ``tokenizers`` JSON string."""
    path = check_model_directory(path)
    transformers = _transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: no usable tokenizer ({e}); save one there with tokenizer.save_pretrained") from e
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"{path}: the tokenizer {type(tokenizer).__name__} has no fast (tokenizers) backend; save a "
                        "fast tokenizer (tokenizer.json) there")
    return backend.to_str()


class HFCache:
    """A ``transformers`` cache with the parts of ``KVCache``'s interface the generation loop uses."""

    def __init__(self, inner: Any, batch_size: int):
        self.inner = inner
        self.batch_size = batch_size  # kept here: transformers' caches do not all report it

    @property
    def length(self) -> int:
        return int(self.inner.get_seq_length())

    def repeat(self, n: int) -> HFCache:
        """Rows tiled like ``Tensor.repeat(n, 1)`` (a copy)."""
        inner = copy.deepcopy(self.inner)
        inner.batch_select_indices(torch.arange(self.batch_size).repeat(n))
        return HFCache(inner, self.batch_size * n)


class HFCausalLM(nn.Module):
    """Wraps ``AutoModelForCausalLM``: ``forward(idx, cache=None, use_cache=False) -> (logits, cache)`` as GPT."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.train()  # from_pretrained returns it in eval mode; Lightning switches modes itself
        params = inspect.signature(model.forward).parameters
        # transformers 5.24 (the pinned minimum) calls the cache `cache`; model classes that still take the
        # older `past_key_values` are served too.
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def from_directory(cls, path: str | Path) -> HFCausalLM:
        path = check_model_directory(path)
        transformers = _transformers()
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: could not load a causal LM from it ({e})") from e
        return cls(model)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HFCausalLM:
        """The architecture described by ``config_dict`` with freshly initialised weights (load a state dict)."""
        transformers = _transformers()
        config = dict(config)
        model_type = config.pop("model_type")
        hf_config = transformers.AutoConfig.for_model(model_type, **config)
        return cls(transformers.AutoModelForCausalLM.from_config(hf_config))

    @property
    def config_dict(self) -> dict[str, Any]:
        return self.model.config.to_dict()

    @property
    def max_positions(self) -> int | None:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, key, None)
            if isinstance(value, int):
                return value
        return None

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_input_embeddings().num_embeddings)

    def forward(self, idx: torch.Tensor, cache: HFCache | None = None,
                use_cache: bool = False) -> tuple[torch.Tensor, HFCache | None]:
        kwargs = {"use_cache": use_cache or cache is not None}
        if cache is not None:
            kwargs[self._cache_arg] = cache.inner
        out = self.model(input_ids=idx, **kwargs)
        new = out.get(self._cache_arg) if kwargs["use_cache"] else None
        return out.logits, (HFCache(new, idx.shape[0]) if new is not None else None)

    def optim_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: matrices decay; biases and norms (1-d parameters) don't."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
