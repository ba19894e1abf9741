"""Stage 3 can be seen working, and a broken one is caught (bench.spatialboost.diagnostics).

The real trainer on the tiny synthetic recipe, trimmed to a few steps: normally the encoder gets
gradient, Attn+ moves away from Attn, the gates move and the health check passes; with the encoder's
gradient cut (the test-only switch `cut_encoder_grad`) every diagnostic stays at its initial value,
the health check fails and no boosted checkpoint is written.
"""
from __future__ import annotations

import json

import pytest

from tests.conftest import SB_FAST, module_home

pytestmark = pytest.mark.slow

FAST = SB_FAST


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    with module_home(tmp_path_factory, "sb_diag_home") as home:
        yield home


@pytest.fixture(scope="module")
def healthy(shared_home):
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    path = train(resolve_config(FAST, encoder="vit-tiny", preset="tiny", progress=False))
    return path, json.loads((path.parent / "train_log.json").read_text())["stages"]["3"]["diagnostics"]


def test_working_stage3_moves_gates_and_attn_plus(healthy):
    path, diag = healthy
    init, hist = diag["initial"], diag["history"]
    assert diag["health"] == {"ok": True, "failures": []}
    assert len(hist) == 4
    assert init["gate_mean"] == 0.5 and init["gate_shift"] == 0.0 and init["attn_plus_drift"] == 0.0
    assert all(h["encoder_grad_norm"] > 0 for h in hist)
    assert all(h["supervised_tokens"] > 0 for h in hist)
    assert hist[-1]["attn_plus_drift"] > 0 and hist[-1]["gate_shift"] > 0
    # the gates' gradient is exactly 0 while Attn+ == Attn (step 1), so they move only afterwards
    assert hist[0]["gate_shift"] == 0.0 and hist[-1]["gate_min"] != hist[-1]["gate_max"]
    assert (path.parent / "stage3_diagnostics.png").stat().st_size > 1000


def test_diagnostics_are_tracked_and_shown(healthy, shared_home, capsys):
    from bench.cli import main
    from bench.tracking import open_client

    client = open_client()
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.`bench.kind` = 'sb-train'")
    run = runs[0]
    for key in ("stage3_gate_mean", "stage3_attn_plus_drift", "stage3_encoder_grad_norm",
                "stage3_supervised_tokens"):
        assert len(client.get_metric_history(run.info.run_id, key)) == 4, key
    assert run.data.metrics["stage3_healthy"] == 1.0
    for stage in (1, 2, 3):  # held-out answers vs the text-only prior, per stage and family
        for key in ("depth_abs_err_m", "closer_accuracy", "cube_centre_abs_err_m", "left_of_accuracy",
                    "distance_abs_err_m"):
            assert f"answers_stage{stage}_{key}" in run.data.metrics and f"answers_stage{stage}_{key}_prior" \
                in run.data.metrics
    arts = [a.path for a in client.list_artifacts(run.info.run_id, "sb")]
    assert "sb/stage3_diagnostics.png" in arts
    assert main(["sb", "info", "vit-tiny+sb"]) == 0
    out = capsys.readouterr().out
    assert "stage 3 health: OK" in out and "attn_plus_drift" in out and "enc grad norm" in out
    assert len([ln for ln in out.splitlines() if ln.strip().split(" ")[0] in {"init", "1", "2", "3", "4"}]) == 5


def test_answer_scoring_by_hand():
    import numpy as np

    from bench.spatialboost.answers import Question, parse, summarise, text_prior

    qs = [Question("depth", None, "q", 2.0), Question("depth", None, "q", 3.0), Question("closer", None, "q", True),
          Question("closer", None, "q", False)]
    prior = text_prior([Question("depth", None, "q", 1.0), Question("depth", None, "q", 2.0),
                        Question("depth", None, "q", 9.0), Question("closer", None, "q", True)])
    assert prior == {"depth": 2.0, "closer": True}
    answers = ["The depth at point (0.1, 0.2) is 2.500 meters.", "garbled", "Yes. Point ...", "Yes, ..."]
    res = summarise(qs, answers, prior)
    assert res["depth"]["model"] == (0.5 + 1.0) / 2 and res["depth"]["prior"] == (0.0 + 1.0) / 2  # garbled -> prior
    assert res["depth"]["parsed"] == 0.5 and not res["depth"]["beats_prior"]
    assert res["closer"]["model"] == 0.5 == res["closer"]["prior"]
    assert parse("depth", "The surface at pixel point (0.5, 0.5) is 42.1 centimeters from the camera.") == \
        pytest.approx(0.421)
    assert np.allclose(parse("cube_centre", "The red box's 3D bounding cube is centered at (0.1, -2.0, 3.5) in meters."),
                       [0.1, -2.0, 3.5])


def test_chain_answers_follow_the_models_own_earlier_answers(healthy, shared_home, monkeypatch):
    """Chain mode: a view's turns are one conversation in training order, the image opens it, every
    earlier assistant turn is the model's own output (never the ground truth), each view starts afresh."""
    from pathlib import Path

    from bench.spatialboost import answers as A
    from bench.spatialboost.data.cot import LEVELS
    from bench.vlm.tokenizer import IMAGE_TOKEN

    root = next((shared_home / "data").glob("synth-tiny"))
    qs = A.scene_questions(root, "val", 2, chains=True)
    chains = sorted({q.chain for q in qs})
    assert chains == [0, 1] and all(len([q for q in qs if q.chain == c]) == 12 for c in chains)
    assert [q.family for q in qs[:3]] == ["depth", "depth", "closer"]  # forward: pixel level first
    assert {q.family for q in qs if q.truth is None} == {"scene_caption", "layout_caption"}
    rev = A.scene_questions(root, "val", 1, chains=True, order="reverse")
    assert [q.question for q in rev] == [q.question for q in qs if q.chain == 0][::-1]
    assert len(A.scene_questions(root, "val", 1, chains=True, levels=LEVELS[:1])) == 5

    seen = []

    def fake_generate(vlm, tok, msgs, visual, max_new_tokens, device):
        seen.append([dict(m) for m in msgs])
        return f"answer {len(seen)}"

    class _LLM:
        training = False

        def eval(self):
            return self

        def train(self, mode=True):
            return self

    encoded = []
    monkeypatch.setattr(A, "_generate", fake_generate)
    vlm = type("V", (), {"llm": _LLM(), "visual_tokens": lambda self, px: encoded.append(px) or px})()
    out = A.answer(vlm, None, lambda im: __import__("torch").zeros(3, 4, 4), qs[:13])
    assert len(encoded) == 2  # the image is encoded once per conversation, not once per turn
    assert out == [f"answer {k}" for k in range(1, 14)]
    assert seen[0] == [{"role": "user", "content": f"{IMAGE_TOKEN}\n{qs[0].question}"}]
    assert seen[2][1] == {"role": "assistant", "content": "answer 1"} and seen[2][3]["content"] == "answer 2"
    assert len(seen[11]) == 23 and seen[12][0]["content"].startswith(IMAGE_TOKEN)  # chain 1 starts afresh
    assert all(Path(q.image).is_file() for q in qs)


def test_cut_encoder_gradient_fails_the_health_check(healthy, shared_home):
    from bench.errors import BenchError
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    cfg = resolve_config(FAST + ["cut_encoder_grad=true", "name=vit-tiny+sb-cut"], encoder="vit-tiny", preset="tiny",
                         progress=False, resume_dir=str(healthy[0].parent))
    with pytest.raises(BenchError, match="health check"):
        train(cfg, (3,))
    out = shared_home / "checkpoints" / "vit-tiny+sb-cut"
    assert not (out / "boosted.safetensors").exists()
    diag = json.loads((out / "train_log.json").read_text())["stages"]["3"]["diagnostics"]
    assert not diag["health"]["ok"] and len(diag["health"]["failures"]) == 3
    init = diag["initial"]
    for h in diag["history"]:
        assert h["encoder_grad_norm"] == 0.0
        assert h["gate_shift"] == 0.0 and h["gate_mean"] == init["gate_mean"] == 0.5
        assert h["attn_plus_drift"] == init["attn_plus_drift"] == 0.0
        assert h["supervised_tokens"] > 0  # the LLM side still trained on real tokens: only the route is cut
