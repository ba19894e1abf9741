"""The official metrics of the general VQA benchmarks, judge-free (docs/vlm-eval.md §3).

* VQAv2: answers normalised by the EvalAI answer processor (lower case, punctuation, number words ->
  digits, articles dropped, contractions); accuracy of an answer = mean over the 10 ground-truth
  answers of min(1, #matches among the other 9 / 3).
* GQA: LLaVA's `convert_gqa_for_eval.py` (lower case, trailing "." stripped), exact match.
* MME: the official `calculation.py`: "yes"/"no" from the answer's first 4 characters; per subtask
  acc (questions) + acc+ (images with both questions right), x100, summed over subtasks.
* MMBench: CircularEval: an item counts only if every rotation of its options is answered right
  (copies share ``index % 1_000_000``); option letters read by the strict parser.
Pure Python.
"""
from __future__ import annotations

import re
from collections import defaultdict

# ------------------------------------------------------------------------------ EvalAI processor
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "shant": "shan't", "shed": "she'd", "shes": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "somebodys": "somebody's", "someones": "someone's", "somethings": "something's", "thats": "that's",
    "thered": "there'd", "therere": "there're", "theres": "there's", "theyd": "they'd", "theyll": "they'll",
    "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "wholl": "who'll",
    "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "yall": "y'all", "youd": "you'd", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}
NUMBER_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
              "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
PUNCTUATIONS = (";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
                "!")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: the official pattern (a look-ahead, not a look-behind)
COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def _punctuation(text: str) -> str:
    out = text
    for p in PUNCTUATIONS:
        if (p + " " in text or " " + p in text) or COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out)


def _digit_article(text: str) -> str:
    words = [NUMBER_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def normalize_vqa(answer: str) -> str:
    """EvalAI's answer processor (lmms-eval `EvalAIAnswerProcessor`)."""
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digit_article(_punctuation(text))


def vqa_accuracy(pred: str, gt_answers: list[str]) -> float:
    """VQA accuracy in [0, 1] of one prediction against its (usually 10) human answers."""
    if not gt_answers:
        raise ValueError("a VQA question needs at least one ground-truth answer")
    p = normalize_vqa(pred)
    gts = [normalize_vqa(a) for a in gt_answers]
    scores = []
    for i in range(len(gts)):
        others = gts[:i] + gts[i + 1:]
        scores.append(min(1.0, sum(a == p for a in others) / 3.0))
    return sum(scores) / len(scores)


# ------------------------------------------------------------------------------------------ GQA
def gqa_correct(pred: str, answer: str) -> bool:
    p = pred.strip()
    p = p[:-1] if p.endswith(".") else p
    return p.lower() == answer.strip().lower()


# ------------------------------------------------------------------------------------------ MME
PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork",
              "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_label(pred: str) -> str:
    """The official `parse_pred_ans`: yes / no / other."""
    p = pred.strip().lower()
    if p in ("yes", "no"):
        return p
    head = p[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def mme_scores(rows: list[tuple[str, str, str, str]]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """rows = (subtask, image id, prediction, "Yes"/"No") -> (perception/cognition/total, per-subtask
    acc, acc+ and score). Every image must have exactly its 2 questions (the official assertion)."""
    per: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for sub, img, pred, gt in rows:
        per[sub][img].append(mme_label(pred) == gt.strip().lower())
    breakdown: dict[str, dict[str, float]] = {}
    for sub, images in per.items():
        bad = [i for i, v in images.items() if len(v) != 2]
        if bad:
            raise ValueError(f"MME {sub}: images without exactly 2 questions: {bad[:3]}")
        answers = [x for v in images.values() for x in v]
        acc = 100.0 * sum(answers) / len(answers)
        acc_plus = 100.0 * sum(all(v) for v in images.values()) / len(images)
        breakdown[f"subtask:{sub}"] = {"acc": acc, "acc_plus": acc_plus, "score": acc + acc_plus,
                                       "n_images": float(len(images))}

    def total(names) -> float:
        return sum(breakdown[f"subtask:{s}"]["score"] for s in names if f"subtask:{s}" in breakdown)

    known = set(PERCEPTION) | set(COGNITION)
    other = [s for s in per if s not in known]
    metrics = {"perception": total(PERCEPTION), "cognition": total(COGNITION), "other": total(other)}
    metrics["score"] = metrics["perception"] if any(s in per for s in PERCEPTION) else metrics["other"]
    return metrics, breakdown


# --------------------------------------------------------------------------------------- MMBench
def circular_accuracy(rows: list[tuple[int, bool]]) -> tuple[float, float]:
    """rows = (index, correct) over every copy -> (CircularEval accuracy %, first-copy accuracy %).
    Copies of one question share ``index % 1_000_000``; the first copy has index < 1_000_000."""
    groups: dict[int, list[bool]] = defaultdict(list)
    first: dict[int, bool] = {}
    for index, ok in rows:
        groups[index % 1_000_000].append(ok)
        if index < 1_000_000:
            first[index % 1_000_000] = ok
    if not groups:
        raise ValueError("no MMBench rows to score")
    circ = 100.0 * sum(all(v) for v in groups.values()) / len(groups)
    single = 100.0 * sum(first.values()) / len(first) if first else float("nan")
    return circ, single


__all__ = ["COGNITION", "PERCEPTION", "circular_accuracy", "gqa_correct", "mme_label", "mme_scores",
           "normalize_vqa", "vqa_accuracy"]
