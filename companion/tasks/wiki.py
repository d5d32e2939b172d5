"""Reading a MediaWiki XML dump (bz2) with the standard library and turning wiki markup into
plain text, reasonably: templates, tables, references, comments, files and categories go;
links keep their label; headings, bold and italics keep their words."""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*?/>|<ref[^>]*?>.*?</ref\s*>", re.S | re.I)
_DROP_BLOCKS = re.compile(
    r"<(math|gallery|timeline|score|syntaxhighlight|source|pre|code|chem|hiero|imagemap)\b[^>]*>.*?</\1\s*>",
    re.S | re.I,
)
_TEMPLATE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.S)  # innermost {{...}}
_TABLE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)  # innermost {| ... |}
_LINK = re.compile(r"\[\[((?:(?!\[\[|\]\]).)*)\]\]", re.S)  # innermost [[...]]
_EXTERNAL = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_TAG = re.compile(r"</?[a-zA-Z][^>]*?/?>")
_BOLD_ITALIC = re.compile(r"'{2,}")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$", re.M)
_LIST = re.compile(r"^[*#:;]+\s*", re.M)
_MAGIC = re.compile(r"__[A-Z]+__")
_DROP_PREFIXES = ("file:", "image:", "category:", "media:")
_INTERLANG = re.compile(r"^[a-z]{2,3}(-[a-z]+)?:")


def _repeat(pattern: re.Pattern, repl, text: str) -> str:
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


def _link(match: re.Match) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    low = target.strip().lower()
    if low.startswith(_DROP_PREFIXES) or _INTERLANG.match(low):
        return ""
    if label:
        # [[File:...|thumb|caption]] is handled above; here the last part is the label
        return label.split("|")[-1]
    return target.lstrip(":")


def strip_markup(text: str) -> str:
    """Plain text from wiki markup (a reasonable approximation, not a full parser)."""
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROP_BLOCKS.sub("", text)
    text = _repeat(_TEMPLATE, "", text)
    text = _repeat(_TABLE, "", text)
    text = _repeat(_LINK, _link, text)
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    text = _TAG.sub("", text)
    text = _MAGIC.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    text = _HEADING.sub(lambda m: m.group(2), text)
    text = _LIST.sub("", text)
    text = html.unescape(text).replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if not line.startswith(("{|", "|}", "|-", "!"))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def read_articles(path: Path) -> list[tuple[int, str, str]]:
    """(page id, title, raw wiki text) of the articles (namespace 0, not redirects) of a
    ``.xml.bz2`` (or plain ``.xml``) MediaWiki dump, in file order."""
    opener = bz2.open if str(path).endswith(".bz2") else open
    out = []
    with opener(path, "rb") as f:
        for _, el in ET.iterparse(f, events=("end",)):
            if el.tag.rsplit("}", 1)[-1] != "page":
                continue
            ns = el.findtext("{*}ns")
            redirect = el.find("{*}redirect") is not None
            text = el.findtext("{*}revision/{*}text") or ""
            if ns == "0" and not redirect and not text.lstrip().upper().startswith("#REDIRECT"):
                out.append((int(el.findtext("{*}id")), el.findtext("{*}title") or "", text))
            el.clear()
    return out
