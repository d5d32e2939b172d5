"""ListOps (Long Range Arena): evaluate nested MIN / MAX / MED / SM expressions over digits.

Grammar (re-implemented from the LRA generator's description):

- a node at depth < ``max_depth`` is a leaf digit 0..9 with probability 0.75, otherwise an
  operator with 2..``max_args`` children (uniform) and an operator uniform over
  MIN, MAX, MED, SM; at depth ``max_depth`` it is always a leaf (the root has depth 1);
- MED is numpy's median truncated with ``int()`` (MED 1 2 = 1), SM is the sum modulo 10;
- the length counts digits, operators and closing brackets, not parentheses; a tree is kept
  when ``min_length < length < max_length`` (strict, as LRA) and is distinct from all trees kept
  so far (also across splits);
- ``levels`` (ours; 0 in LRA): when set, a tree is kept only when its operators nest exactly
  ``levels`` deep (:func:`nesting_depths`), so the grammar above is conditioned on that depth.
  A tree of ``max_depth`` has at most ``max_depth - 1`` operator levels, and short windows
  favour shallow trees: at ``max_depth`` 3 and lengths 10..60 every tree has two.

Text format: the LRA release writes each tree with the parentheses of its binarised form, e.g.
``[MAX 2 9 [MIN 4 7 ] 0 ]`` is stored as
``( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )``. Our generator writes the same
format, so generated data and the released TSVs go through one tokeniser: parentheses dropped,
``]`` renamed ``X``, then 18 tokens: ``<pad>`` 0, ``<unk>`` 1, ``<eos>`` 2, digits ``0``..``9``
as 3..12, ``[MIN`` ``[MAX`` ``[MED`` ``[SM`` ``X`` as 13..17. ``<eos>`` is appended (as the
paper's loader does) and sequences are cut to ``seq_len`` including it.

The defaults of :class:`ListOpsConfig` (500..2000, depth 10, 10 args, 96k/2k/2k) generate
LRA-like data; the paper profile (``configs/listops/task.yaml``) reads the released TSVs
(``basic_{train,val,test}.tsv`` of ``listops-1000``) from ``$COMPANION_LRA_RELEASE`` or
``<data root>/lra_release/listops-1000``; quick and smoke generate short trees for CPUs.
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from companion.schema import MAX_COUNT, MAX_LENGTH, ConfigError, setting, validate
from companion.tasks import cache
from companion.tasks.base import IDS, LABEL, Task, silent, table
from companion.tasks.common import DataError

MIN, MAX, MED, SM, END = "[MIN", "[MAX", "[MED", "[SM", "]"
OPERATORS = (MIN, MAX, MED, SM)
LEAF_P = 0.75

SPECIALS = ("<pad>", "<unk>", "<eos>")
SYMBOLS = tuple(str(d) for d in range(10)) + OPERATORS + ("X",)
VOCAB = SPECIALS + SYMBOLS  # 18 tokens
STOI = {s: i for i, s in enumerate(VOCAB)}
PAD_ID, UNK_ID, EOS_ID = 0, 1, 2


@dataclass(frozen=True)
class ListOpsConfig:
    source: str = setting("generator", choices=("generator", "lra_release"))
    min_length: int = setting(500, at_least=0, at_most=MAX_LENGTH)  # exclusive, as LRA
    max_length: int = setting(2000, at_least=2, at_most=MAX_LENGTH)  # exclusive, as LRA
    max_depth: int = setting(10, at_least=1, at_most=100)
    max_args: int = setting(10, at_least=1, at_most=1000)
    levels: int = setting(0, at_least=0, at_most=100)  # operator levels of every tree; 0: any (LRA)
    n_train: int = setting(96_000, at_least=1, at_most=MAX_COUNT)
    n_val: int = setting(2_000, at_least=1, at_most=MAX_COUNT)
    n_test: int = setting(2_000, at_least=1, at_most=MAX_COUNT)
    seq_len: int = setting(2048, at_least=2, at_most=MAX_LENGTH)  # cut (including <eos>)
    seed: int = setting(0, at_least=0)  # train uses seed, val seed + 1, test seed + 2

    def __post_init__(self):
        validate(self, "data.")
        if self.levels > self.max_depth - 1:
            raise ConfigError(
                f"data.levels = {self.levels}: expected at most max_depth - 1 = "
                f"{self.max_depth - 1} (a tree of max_depth {self.max_depth} nests no deeper)"
            )


# ---------------------------------------------------------------------------------------------
# evaluation


def apply(op: str, args: Sequence[int]) -> int:
    if op == MIN:
        return min(args)
    if op == MAX:
        return max(args)
    if op == MED:
        return int(np.median(args))
    if op == SM:
        return sum(args) % 10
    raise ValueError(f"unknown ListOps operator {op!r}")


def nesting_depths(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """The number of operator levels of each encoded tree ``(N,)``: the deepest run of open
    operators (``[MIN 1 [MAX 2 X X`` has two). ``rows``: token ids of :data:`VOCAB`."""
    opens = {STOI[op] for op in OPERATORS}
    depths = []
    for ids in rows:
        level = deepest = 0
        for i in ids:
            level += (i in opens) - (i == STOI["X"])
            deepest = max(deepest, level)
        depths.append(deepest)
    return np.asarray(depths)


def tokenize(source: str) -> list[str]:
    """LRA tokenisation: drop parentheses, rename ``]`` to ``X``, split on whitespace."""
    return source.translate({ord("]"): "X", ord("("): None, ord(")"): None}).split()


def evaluate(expression: str | Sequence[str]) -> int:
    """The value of an expression, given as text (with or without parentheses, ``]`` or ``X``)
    or as a token list. Raises ``ValueError`` on malformed input."""
    tokens = tokenize(expression) if isinstance(expression, str) else list(expression)
    stack: list[list] = []
    value = None
    for tok in tokens:
        if tok in SPECIALS:
            continue
        if tok in OPERATORS:
            stack.append([tok, []])
        elif tok in ("X", END):
            if not stack:
                raise ValueError("closing bracket without an operator")
            op, args = stack.pop()
            if not args:
                raise ValueError(f"operator {op} without arguments")
            result = apply(op, args)
            if stack:
                stack[-1][1].append(result)
            elif value is None:
                value = result
            else:
                raise ValueError("more than one top-level expression")
        elif tok.isdigit() and len(tok) == 1:
            if stack:
                stack[-1][1].append(int(tok))
            elif value is None:
                value = int(tok)
            else:
                raise ValueError("more than one top-level expression")
        else:
            raise ValueError(f"unknown ListOps token {tok!r}")
    if stack or value is None:
        raise ValueError("incomplete ListOps expression")
    return value


# ---------------------------------------------------------------------------------------------
# generation


def _draw_shape(rand, cfg: ListOpsConfig) -> tuple[list[float] | None, int, int]:
    """Draw a tree shape in preorder without building it: the random numbers used, the length
    and the operator levels, or (None, length so far, levels so far) as soon as the length
    reaches ``max_length``."""
    max_depth, max_args, max_length = cfg.max_depth, cfg.max_args, cfg.max_length
    draws: list[float] = []
    length = levels = 0
    stack = [1]  # depths of the nodes still to visit (the root has depth 1)
    while stack:
        depth = stack.pop()
        if depth < max_depth:
            r = rand()
            draws.append(r)
            if r <= 1 - LEAF_P:  # an operator with 2..max_args children
                r = rand()
                draws.append(r)
                length += 2  # the operator and its closing bracket
                levels = max(levels, depth)  # an operator at depth d is the d-th level
                if length >= max_length:
                    return None, length, levels
                stack.extend([depth + 1] * (2 + int(r * (max_args - 1))))
                continue
        length += 1  # a leaf
        if length >= max_length:
            return None, length, levels
    return draws, length, levels


def longest(max_depth: int, max_args: int) -> int:
    """Tokens of the longest tree: every node above ``max_depth`` an operator with
    ``max_args`` children (the operator, its children and its closing bracket)."""
    length = 1  # a leaf at depth max_depth
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def _replay(draws, depth: int, cfg: ListOpsConfig):
    """The shape behind ``draws`` (an iterator): None for a leaf, a list of child shapes."""
    if depth >= cfg.max_depth or next(draws) > 1 - LEAF_P:
        return None
    n_args = 2 + int(next(draws) * (cfg.max_args - 1))
    return [_replay(draws, depth + 1, cfg) for _ in range(n_args)]


def _fill(rng: random.Random, shape):
    """Draw the digits and operators of an accepted shape: int or (op, [children])."""
    if shape is None:
        return int(rng.random() * 10)
    children = [_fill(rng, s) for s in shape]
    return (OPERATORS[int(rng.random() * len(OPERATORS))], children)


def tree_value(tree) -> int:
    if isinstance(tree, int):
        return tree
    op, children = tree
    return apply(op, [tree_value(c) for c in children])


def to_source(tree) -> str:
    """The LRA release's text of a tree (parentheses of the binarised form)."""
    if isinstance(tree, int):
        return str(tree)
    op, children = tree
    text = f"( {op} {to_source(children[0])} )"
    for child in children[1:]:
        text = f"( {text} {to_source(child)} )"
    return f"( {text} {END} )"


def generate(
    n: int, cfg: ListOpsConfig, seed: int, exclude: set[str] | None = None, progress=None
) -> list[tuple[str, int]]:
    """``n`` distinct (source, value) pairs with lengths strictly inside the window (and
    ``cfg.levels`` operator levels, when set).

    Rejection sampling, made cheap in ways that change which random numbers are drawn but not
    the distribution of the kept trees: the shape (leaf or operator, argument counts) is drawn
    first, without building it, and abandoned as soon as it is too long (it would be rejected
    anyway); the digits and operators, independent of the shape, are drawn only for accepted
    shapes."""
    if not 0 <= cfg.min_length < cfg.max_length - 1:
        raise ValueError(f"empty ListOps length window ({cfg.min_length}, {cfg.max_length})")
    if cfg.max_depth < 1 or cfg.max_args < 2:
        raise ValueError("ListOps needs max_depth >= 1 and max_args >= 2")
    if longest(cfg.max_depth, cfg.max_args) <= cfg.min_length:
        raise ValueError(
            f"no ListOps tree of depth <= {cfg.max_depth} with <= {cfg.max_args} arguments is "
            f"longer than min_length = {cfg.min_length} (the longest has "
            f"{longest(cfg.max_depth, cfg.max_args)} tokens)"
        )
    if cfg.levels and not (
        3 * cfg.levels + 1 < cfg.max_length
        and longest(cfg.levels + 1, cfg.max_args) > cfg.min_length
    ):
        raise ValueError(
            f"no ListOps tree with {cfg.levels} operator levels and <= {cfg.max_args} arguments "
            f"has a length in ({cfg.min_length}, {cfg.max_length}): they have "
            f"{3 * cfg.levels + 1}-{longest(cfg.levels + 1, cfg.max_args)} tokens"
        )
    rng = random.Random(seed)
    seen = set(exclude or ())
    out: list[tuple[str, int]] = []
    while len(out) < n:
        draws, length, levels = _draw_shape(rng.random, cfg)
        if draws is None or not cfg.min_length < length < cfg.max_length:
            continue
        if cfg.levels and levels != cfg.levels:
            continue
        tree = _fill(rng, _replay(iter(draws), 1, cfg))
        source = to_source(tree)
        if source in seen:
            continue
        seen.add(source)
        out.append((source, tree_value(tree)))
        if progress is not None:
            progress.update(1)
    return out


def read_tsv(path: Path) -> list[tuple[str, int]]:
    """Read an LRA ListOps TSV (columns ``Source``, ``Target``)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if reader.fieldnames is None or not {"Source", "Target"} <= set(reader.fieldnames):
            raise DataError(f"{path} is not an LRA ListOps TSV (needs columns Source, Target)")
        rows = []
        for line, row in enumerate(reader, 2):  # line 1 is the header
            target = row["Target"]
            if not (row["Source"] and target and target.strip().isdigit()):
                raise DataError(f"{path} line {line} is not a tree and its value: {row!r}")
            rows.append((row["Source"], int(target)))
        return rows


def encode(source: str, seq_len: int) -> list[int]:
    ids = [STOI.get(t, UNK_ID) for t in tokenize(source)]
    return ids[: seq_len - 1] + [EOS_ID]


def release_dir(root: Path, release: Path | None = None) -> Path:
    """Where the LRA release's ListOps TSVs are: ``release`` (``--lra-release``), else
    ``$COMPANION_LRA_RELEASE``, else ``<data root>/lra_release``; inside it, ``listops-1000``
    when that folder exists."""
    env = os.environ.get("COMPANION_LRA_RELEASE")
    base = release or (Path(env).expanduser() if env else root / "lra_release")
    return base / "listops-1000" if (base / "listops-1000").is_dir() else base


def release_paths(folder: Path) -> dict[str, Path]:
    """split -> the release's TSV of that split in ``folder``."""
    return {s: folder / f"basic_{s}.tsv" for s in ("train", "val", "test")}


class ListOps(Task):
    name = "listops"
    label, marker = "ListOps", "o"
    Config = ListOpsConfig
    kind = "classification"
    metric = "accuracy"
    n_classes = 10
    vocab_size = len(VOCAB)
    pad_id = PAD_ID
    first_token = "the root operator"  # MIN→0, MAX→9, MED/SM→5
    paper_train_examples = 96_000  # LRA listops-1000 basic_train.tsv

    def setup(self):
        cfg = self.config
        self.generated = cfg.source == "generator"
        self.seq_len = cfg.seq_len
        self.source = (
            "LRA release TSVs (listops-1000)"
            if self.reads_release
            else f"generator (LRA grammar, lengths {cfg.min_length}..{cfg.max_length} exclusive)"
        )

    @property
    def reads_release(self) -> bool:
        return self.config.source == "lra_release"

    def inputs(self, root: Path) -> dict[str, str] | None:
        """The release TSVs' sha256 (paper profile), when all three are at hand."""
        if not self.reads_release:
            return None
        paths = release_paths(release_dir(root, self.release))
        if not all(p.is_file() for p in paths.values()):
            return None
        return {p.name: cache.sha256_file(p) for p in paths.values()}

    def rows(self, root: Path, log) -> dict[str, list[tuple[str, int]]]:
        cfg = self.config
        if self.reads_release:
            folder = release_dir(root, self.release)
            paths = release_paths(folder)
            missing = [p.name for p in paths.values() if not p.is_file()]
            if missing:
                raise DataError(
                    f"ListOps (paper) reads the LRA release: put basic_train/val/test.tsv of "
                    f"lra_release/listops-1000 in {folder} (or pass --lra-release DIR, or set "
                    f"COMPANION_LRA_RELEASE); "
                    f"missing {', '.join(missing)}"
                )
            return {s: read_tsv(p) for s, p in paths.items()}
        sizes = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        seen: set[str] = set()
        out = {}
        with tqdm(
            total=sum(sizes.values()),
            desc="  listops trees",
            unit="tree",
            disable=True if log is silent else None,  # None: shown on a terminal only
            leave=False,
        ) as bar:
            for offset, (split, n) in enumerate(sizes.items()):
                rows = generate(n, cfg, cfg.seed + offset, exclude=seen, progress=bar)
                seen.update(s for s, _ in rows)
                out[split] = rows
        return out

    def build(self, root, log):
        tables = {}
        for split, rows in self.rows(root, log).items():
            ids = [np.asarray(encode(s, self.seq_len), dtype=np.int32) for s, _ in rows]
            labels = [v for _, v in rows]
            tables[split] = table(
                {"input_ids": ids, "label": labels}, {"input_ids": IDS, "label": LABEL}
            )
        return tables, {"vocab": list(VOCAB)}

    def token_strings(self, ids):
        return [VOCAB[i] if 0 <= i < len(VOCAB) else "<unk>" for i in ids]
