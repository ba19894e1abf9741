"""Corpus BLEU as pycocoevalcap's `Bleu(4)` computes it on `PTBTokenizer` output (the ScanQA / SQA3D
score scripts, shared/docs/lexicon3d.md §3.3).

`corpus_bleu` calls pycocoevalcap itself (its Stanford CoreNLP PTBTokenizer runs through Java) when
both are available, and otherwise this module's pure-Python clone: `ptb_tokenize` (PTBTokenizer
`-preserveLines -lowerCase`, then pycocoevalcap's punctuation removal) and `bleu` (BleuScorer,
option "closest"). The clone is pinned against pycocoevalcap in tests/test_scene3d_bleu.py; the
implementation used travels with the number (`bleu_implementation` param).

Known clone divergences (rare in short answers): PTBLexer's full abbreviation list (we keep the
periods of single-letter acronyms like "u.s.a." and of `ABBREVIATIONS`), SGML tags, e-mail and URLs,
emoticons, "'80s"-style year clitics."""
from __future__ import annotations

import math
import re
import shutil
from collections import Counter

# pycocoevalcap PTBTokenizer.PUNCTUATIONS; they are compared after -lowerCase, so "-LRB-" never matches
# and brackets survive as "-lrb-" etc. (reproduced, not fixed)
PUNCT = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"}
BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
FRACTIONS = {"¼": "1/4", "½": "1/2", "¾": "3/4", "⅓": "1/3", "⅔": "2/3"}
# PTBLexer splits these words in two (its "gonna" rules)
SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"), "wanna": ("wan", "na"),
               "lemme": ("lem", "me"), "gimme": ("gim", "me"), "'tis": ("'t", "is"), "'twas": ("'t", "was")}
# periods PTBLexer keeps (not "no.": it keeps that one only before a number, even across lines)
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "etc", "vs", "inc", "co", "ltd", "corp",
                 "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "ft", "mt",
                 "ph.d"}
KEEP_APOSTROPHE = {"o'clock", "ma'am", "y'all"}
_CLITIC = re.compile(r"^(.+?)(n't|'s|'re|'ve|'m|'ll|'d)$")
_TOKEN = re.compile(r"""
    [^\W\d_](?:\.[^\W\d_])+\.           # acronyms keep their periods: u.s.a., e.g.
  | [^\W\d_]\.$                         # a single letter with a period: an initial (m., a.)
  | [+-]?\d+(?:[.,:/]\d+)+|[+-]\d+       # numbers: 1.5, 1,000, 3:00, 1/2, -5
  | \.\.\.|--                           # ellipsis, dash
  | [^\W_](?:[\w'&/]|-(?!-)|\.(?=[^\W_]))*(?<![-'&/.])  # words: inner hyphens, slashes, apostrophes, periods
  | \S                                  # any other symbol on its own
""", re.X)


def _split_word(w: str) -> list[str]:
    if w in SPLIT_WORDS:
        return list(SPLIT_WORDS[w])
    if "'" not in w or w in KEEP_APOSTROPHE:
        return [w]
    m = _CLITIC.match(w)
    if m and "'" not in m.group(1):
        return [m.group(1), m.group(2)]
    return [p for part in re.split(r"('n')", w) for p in ([part] if part == "'n'" else part.split("'")) if p]


def ptb_tokenize(text: str) -> list[str]:
    """PTBTokenizer -preserveLines -lowerCase, then pycocoevalcap's punctuation tokens dropped."""
    text = text.lower().replace("\n", " ")
    for k, v in FRACTIONS.items():
        text = text.replace(k, f" {v} ")
    text = re.sub(r"[\u201c\u201d\u2018\u2019\"]", lambda m: " '' " if m.group() in "\u201d\"" else
                  (" ' " if m.group() == "\u2018" else ("'" if m.group() == "\u2019" else " `` ")), text)
    out: list[str] = []
    for chunk in text.split():
        if chunk in SPLIT_WORDS:
            out += SPLIT_WORDS[chunk]
            continue
        body = chunk.rstrip(".")
        if body in ABBREVIATIONS and chunk == body + ".":
            out.append(chunk)
            continue
        for tok in _TOKEN.findall(chunk):
            out += _split_word(tok) if tok[0].isalpha() else [BRACKETS.get(tok, tok)]
    return [t for t in out if t not in PUNCT]


def bleu(refs: dict, hyps: dict, n: int = 4, tokenize=ptb_tokenize) -> list[float]:
    """BleuScorer.compute_score(option='closest'): corpus BLEU-1..n over {key: [refs]}, {key: hyp}."""
    match, total = [0] * n, [0] * n
    hyp_len = ref_len = 0
    for k, hyp in hyps.items():
        h = tokenize(hyp)
        rs = [tokenize(r) for r in refs[k]]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in rs)[1]
        for g in range(1, n + 1):
            hc = Counter(tuple(h[i:i + g]) for i in range(len(h) - g + 1))
            maxref: Counter = Counter()
            for r in rs:
                for ng, c in Counter(tuple(r[i:i + g]) for i in range(len(r) - g + 1)).items():
                    maxref[ng] = max(maxref[ng], c)
            match[g - 1] += sum(min(c, maxref[ng]) for ng, c in hc.items())
            total[g - 1] += max(len(h) - g + 1, 0)
    tiny, small = 1e-15, 1e-9
    ratio = (hyp_len + tiny) / (ref_len + small)
    out, prod = [], 1.0
    for g in range(n):
        prod *= (match[g] + tiny) / (total[g] + small)
        score = prod ** (1.0 / (g + 1))
        out.append(score * (math.exp(1 - 1 / ratio) if ratio < 1 else 1.0))
    return out


def coco_available() -> str | None:
    """None when pycocoevalcap and Java are both here, else why not."""
    try:
        import pycocoevalcap.bleu.bleu  # noqa: F401
        import pycocoevalcap.tokenizer.ptbtokenizer  # noqa: F401
    except ImportError:
        return "pycocoevalcap is not installed (pip install pycocoevalcap)"
    if shutil.which("java") is None:
        return "pycocoevalcap's PTBTokenizer needs Java (no `java` on PATH)"
    return None


def coco_tokenize(refs: dict, hyps: dict) -> tuple[dict, dict]:
    """pycocoevalcap's PTBTokenizer (Java) on both sides: ({str key: [tokenized refs]}, {str key: [hyp]})."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    keys = [str(k) for k in hyps]
    tok = PTBTokenizer()
    gts = tok.tokenize({str(k): [{"caption": r} for r in refs[k]] for k in hyps})
    res = tok.tokenize({str(k): [{"caption": h}] for k, h in hyps.items()})
    if set(gts) != set(keys) or set(res) != set(keys):
        raise RuntimeError("pycocoevalcap PTBTokenizer returned fewer lines than it was given")
    return gts, res


def coco_bleu(refs: dict, hyps: dict) -> list[float]:
    """pycocoevalcap itself: PTBTokenizer (Java) on both sides, then Bleu(4).compute_score."""
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = coco_tokenize(refs, hyps)
    with contextlib.redirect_stdout(io.StringIO()):  # Bleu prints its totals
        score, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return [float(s) for s in score]


def bleu1_rows(refs: dict, hyps: dict, implementation: str):
    """Per-item (clipped unigram matches, hypothesis length, closest reference length), tokenized as the
    `implementation` that scored the corpus did: `bench.stats.bleu1_of_rows` turns them back into its
    BLEU-1 (so a bootstrap over questions recomputes the corpus metric on every resample)."""
    import numpy as np

    if implementation == "pycocoevalcap":
        gts, res = coco_tokenize(refs, hyps)
        pairs = [([r.split() for r in gts[str(k)]], res[str(k)][0].split()) for k in hyps]
    else:
        pairs = [([ptb_tokenize(r) for r in refs[k]], ptb_tokenize(h)) for k, h in hyps.items()]
    rows = []
    for rs, h in pairs:
        maxref: Counter = Counter()
        for r in rs:
            for w, c in Counter(r).items():
                maxref[w] = max(maxref[w], c)
        match = sum(min(c, maxref[w]) for w, c in Counter(h).items())
        rows.append((match, len(h), min((abs(len(r) - len(h)), len(r)) for r in rs)[1]))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def corpus_bleu(refs: dict, hyps: dict, implementation: str = "auto") -> tuple[list[float], str]:
    """(BLEU-1..4, implementation used): "pycocoevalcap" when available (auto | pycocoevalcap), else "clone"
    (this module's pure-Python copy, pinned to it); "pycocoevalcap" asked for but unavailable raises."""
    if implementation not in ("auto", "pycocoevalcap", "clone"):
        raise ValueError(f"bleu implementation must be auto, pycocoevalcap or clone, got {implementation!r}")
    if implementation != "clone":
        why = coco_available()
        if why is None:
            return coco_bleu(refs, hyps), "pycocoevalcap"
        if implementation == "pycocoevalcap":
            raise RuntimeError(why)
    return bleu(refs, hyps), "clone"


__all__ = ["PUNCT", "bleu", "bleu1_rows", "coco_available", "coco_bleu", "coco_tokenize", "corpus_bleu", "ptb_tokenize"]
