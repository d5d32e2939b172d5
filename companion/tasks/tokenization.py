"""Tokenisers shared by the text and language-model tasks.

- :class:`ByteTokenizer`: UTF-8 bytes. ids 0..255 are the byte values; 0 doubles as the pad id
  (a NUL byte never occurs in our text, NULs are dropped on encoding); 256 is ``<eos>``.
  ``vocab_size`` is 257.
- :class:`CharVocab`: characters (Unicode code points) with a minimum frequency, as the LRA
  IMDb character level (min_freq 15): ``<pad>`` 0, ``<unk>`` 1, ``<eos>`` 2, then the kept
  characters by decreasing training frequency (ties by character), like torchtext's
  ``build_vocab_from_iterator``.
- :func:`gpt2_tokenizer`: GPT-2's byte-level BPE from ``encoder.json`` and ``vocab.bpe``
  through Hugging Face ``tokenizers``; ids equal GPT-2's (``"Hello world"`` -> 15496, 995;
  ``<|endoftext|>`` is 50256).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

GPT2_EOS = "<|endoftext|>"
GPT2_EOS_ID = 50256
GPT2_VOCAB = 50257


class ByteTokenizer:
    vocab_size = 257
    pad_id = 0
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.replace("\x00", "").encode("utf-8"))

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        out = []
        for i in ids:
            if i == self.eos_id:
                out.append("<eos>")
            elif i == 0:
                out.append("<pad>")
            elif 32 <= i < 127:
                out.append(chr(i))
            else:
                out.append(f"<0x{i:02X}>")
        return out

    def decode_text(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if 0 < i < 256).decode("utf-8", errors="replace")


class CharVocab:
    PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
    pad_id, unk_id, eos_id = 0, 1, 2

    def __init__(self, tokens: Sequence[str]):
        self.itos = list(tokens)
        self.stoi = {s: i for i, s in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 15) -> CharVocab:
        counts = Counter()
        for text in texts:
            counts.update(text)
        kept = sorted(
            (c for c, n in counts.items() if n >= min_freq), key=lambda c: (-counts[c], c)
        )
        return cls([cls.PAD, cls.UNK, cls.EOS, *kept])

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(c, self.unk_id) for c in text]

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        return [self.itos[i] if 0 <= i < len(self.itos) else self.UNK for i in ids]


def gpt2_tokenizer(encoder_json: Path, vocab_bpe: Path):
    """GPT-2's byte-level BPE as a ``tokenizers.Tokenizer`` (no prefix space, as GPT-2)."""
    tok = Tokenizer(models.BPE.from_file(str(encoder_json), str(vocab_bpe)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(GPT2_EOS, special=True)])
    if tok.token_to_id(GPT2_EOS) != GPT2_EOS_ID:
        raise ValueError(f"the BPE files do not give {GPT2_EOS} the id {GPT2_EOS_ID} (not GPT-2's)")
    return tok


def gpt2_token_strings(tok, ids: Sequence[int]) -> list[str]:
    """Each id's own text (byte-level pieces of a multi-byte character show as U+FFFD)."""
    return [tok.decode([int(i)], skip_special_tokens=False) for i in ids]
