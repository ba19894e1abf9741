"""BLEU-1 of the 3D QA tasks: the clone equals pycocoevalcap's Bleu(4) after its Java PTBTokenizer on
fixed strings (punctuation, case, clitics, brackets, numbers, several references, short candidates
under the brevity penalty), plus hand-computed corpus values and the fallback rule."""
from __future__ import annotations

import math

import pytest

from bench.metrics import bleu as B

# candidate, references: ScanQA-like answers and the tokenizer's corner cases
CORPUS = [
    ("Brown wooden chair.", ["brown wooden chair", "dark brown chair"]),
    ("It's on the LEFT side of the room!", ["on the left side of the room", "left of the bed"]),
    ("2", ["two", "2 chairs", "2"]),
    ("chair", ["the chair next to the table", "a brown chair near the window"]),  # short: brevity penalty
    ("don't know", ["do not know"]),
    ("two (2) chairs", ["2 chairs", "two chairs"]),
    ("1.5 meters away", ["1.5 m", "about 1.5 meters"]),
    ('the "red" ball, near the lamp', ["red ball", "the red ball near the lamp"]),
    ("it's 3.5m away; can't miss it", ["3.5 m", "it cannot be missed"]),
    ("white/black t-shirt", ["white t-shirt", "black and white shirt"]),
    ("the chair's legs -- wooden...", ["wooden legs", "the legs of the chair are wooden"]),
    ("e.g. a U.S.A. flag", ["a flag of the u.s.a.", "an american flag"]),
    ("Gonna say [left] or {right}?", ["left", "right"]),
    ("", ["nothing"]),  # an empty answer counts as length 0
]

TOKEN_CASES = [s for c, refs in CORPUS for s in [c, *refs]] + [
    "Cannot", "won't", "I'm", "they've", "you'll", "he'd", "chairs' legs", "'quoted'", "o'clock", "rock'n'roll",
    "50%", "$5", "#1", "x*y", "1,000", "3:00", "½", "Mr. Smith", "etc.", "No.", "Ph.D.", "It's 2.5 m.", "a.b",
    "2x", "10th floor", "well--known", "a - b", "-5 degrees", "left-", "don\u2019t", "\u201ccurly\u201d quotes", "caf\u00e9",
]


def _coco():
    why = B.coco_available()
    if why is not None:
        pytest.skip(f"pycocoevalcap reference unavailable: {why}")


def test_clone_tokens_equal_ptbtokenizer():
    _coco()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    java = PTBTokenizer().tokenize({str(i): [{"caption": s}] for i, s in enumerate(TOKEN_CASES)})
    got = {s: B.ptb_tokenize(s) for s in TOKEN_CASES}
    want = {s: java[str(i)][0].split() for i, s in enumerate(TOKEN_CASES)}
    assert got == want
    assert want["two (2) chairs"] == ["two", "-lrb-", "2", "-rrb-", "chairs"]  # brackets survive -lowerCase


def test_clone_bleu_equals_pycocoevalcap_on_fixed_strings():
    _coco()
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {f"q{i}": r for i, (_, r) in enumerate(CORPUS)}
    hyps = {f"q{i}": c for i, (c, _) in enumerate(CORPUS)}
    coco = B.coco_bleu(refs, hyps)
    assert B.bleu(refs, hyps) == pytest.approx(coco, rel=1e-12, abs=1e-15)  # BLEU-1..4, corpus level
    assert 0.3 < coco[0] < 0.9
    assert B.corpus_bleu(refs, hyps) == (coco, "pycocoevalcap")  # what the tasks use when it is here
    # single items (one Java tokenisation, then pycocoevalcap's scorer per item), incl. short candidates
    gts = PTBTokenizer().tokenize({k: [{"caption": r} for r in v] for k, v in refs.items()})
    res = PTBTokenizer().tokenize({k: [{"caption": h}] for k, h in hyps.items()})
    for k in refs:
        with contextlib.redirect_stdout(io.StringIO()):
            one = Bleu(4).compute_score({k: gts[k]}, {k: res[k]}, verbose=0)[0]
        assert B.bleu({k: refs[k]}, {k: hyps[k]}) == pytest.approx(one, rel=1e-12, abs=1e-15), k
        if k == "q3":  # 1 token vs a closest reference of 6: the brevity penalty alone
            assert one[0] == pytest.approx(math.exp(1 - 6 / 1), rel=1e-6)


def test_bleu_matches_hand_computed_corpus_values():
    # one hypothesis: 3 tokens, 2 match unigrams of the closest reference (length 3): P1 = 2/3, BP = 1
    assert B.bleu({"a": ["dark brown chair"]}, {"a": "brown wooden chair"})[0] == pytest.approx(2 / 3, abs=1e-9)
    # corpus level: matches and lengths summed over items, then one brevity penalty
    # item 1: hyp 1 token, closest ref length 1, 1 match; item 2: hyp 1, ref len 5, 1 match -> P1 = 1, BP = e^(1-6/2)
    refs = {"1": ["brown", "dark brown"], "2": ["two chairs in the room"]}
    assert B.bleu(refs, {"1": "brown", "2": "two"})[0] == pytest.approx(math.exp(1 - 6 / 2), rel=1e-6)
    # clipping: a repeated word counts at most as often as in a reference
    assert B.bleu({"x": ["the chair"]}, {"x": "the the"})[0] == pytest.approx(0.5, abs=1e-9)
    # ties in "closest" pick the shorter reference (min over (|len diff|, len))
    assert B.bleu({"t": ["a b c d", "a b"]}, {"t": "a b c"})[0] == pytest.approx(1.0, abs=1e-9)


def test_corpus_bleu_falls_back_to_the_clone_and_says_so(monkeypatch):
    monkeypatch.setattr(B, "coco_available", lambda: "pycocoevalcap is not installed (pip install pycocoevalcap)")
    refs, hyps = {"a": ["brown chair"]}, {"a": "brown chair"}
    scores, impl = B.corpus_bleu(refs, hyps)
    assert impl == "clone" and scores[0] == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="not installed"):
        B.corpus_bleu(refs, hyps, "pycocoevalcap")
    with pytest.raises(ValueError, match="auto, pycocoevalcap or clone"):
        B.corpus_bleu(refs, hyps, "sacrebleu")
