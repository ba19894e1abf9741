"""End to end, offline: the tiny VLMs a SpatialBoost training leaves behind (vit-tiny: stage-2
projector + LLM; vit-tiny+sb: boosted encoder + stage-3 projector + the same LLM) answer the
synthetic twins of SpatialRGPT-Bench, BLINK Relative Depth and VQAv2 through the task code, with
per-category numbers and every answer kept; batching does not change greedy answers; an interrupted
evaluation resumes; a missing LLM, a projector of another encoder, a VLM that was never trained are
errors naming the cause. Training is trimmed like tests/test_sb_train.py."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

pytestmark = pytest.mark.slow

FAST = ["max_length=512", "eval_samples=0", "threads=1", "stage1.max_steps=2", "stage2.max_steps=4",
        "stage3.micro_batch=4", "stage3.global_batch=4", "stage3.max_steps=2"]
TWINS = ("spatialrgpt-bench-synth", "blink-relative-depth-synth", "vqav2-synth")
QUICK = {"limit": 8, "max_new_tokens": 6, "train_missing": False}


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("vlm_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_HOME", str(home))
        mp.setenv("BENCH_SYNTH_PRESET", "tiny")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield home


@pytest.fixture(scope="module")
def trained(shared_home):
    from bench.spatialboost.config import resolve_config
    from bench.spatialboost.train import train

    before = torch.get_num_threads()
    cfg = resolve_config(FAST, encoder="vit-tiny", preset="tiny", progress=False, track=False)
    path = train(cfg)
    torch.set_num_threads(before)
    return path.parent


@pytest.fixture(scope="module")
def vlms(trained):
    from bench.encoders import load_encoder
    from bench.spatialboost.vlm_checkpoint import load_trained_vlm

    return {n: load_trained_vlm(load_encoder(n), torch.device("cpu"), train_missing=False)
            for n in ("vit-tiny", "vit-tiny+sb")}


def test_twins_evaluate_both_vlms_with_per_category_accuracy(trained, tmp_path):
    from bench.encoders import load_encoder
    from tests.conftest import run_task

    for name in ("vit-tiny", "vit-tiny+sb"):
        enc = load_encoder(name)
        for task in TWINS:
            art = tmp_path / name / task
            res, ctx = run_task(task, enc, artifacts_dir=art, **QUICK, text_only_baseline=task == TWINS[1])
            m = res.metrics
            assert 0.0 <= m["accuracy"] <= 100.0 and 0.0 <= m["majority"] <= 100.0
            rows = [json.loads(x) for x in (art / "answers.jsonl").read_text().splitlines()]
            assert len(rows) == QUICK["limit"] and {"question_id", "prompt", "text", "gt", "correct"} <= set(rows[0])
            assert ctx.params["vlm.projector_stage"] == (3 if name.endswith("+sb") else 2)
            if task == TWINS[0]:
                assert {k for k in res.breakdown if k.startswith("category:")} and "qualitative" in m
                assert (art / "regions_example.jpg").is_file()
            if task == TWINS[1]:
                assert "text_only" in m and m["majority"] == 50.0  # the twin balances (A) and (B)
            if task == TWINS[2]:
                assert set(res.breakdown) <= {"category:other", "category:yes/no", "category:number"}


def test_batching_keeps_greedy_answers_and_runs_resume(vlms, tmp_path):
    from bench.vlm.evaluate import answer_all, prepared_image
    from bench.vlm.readers import read_spatialrgpt
    from bench.data.vlm_twin_source import TwinData

    root = TwinData("spatialrgpt").prepare(progress=False, preset="tiny")
    items = read_spatialrgpt(root / "SpatialRGPT-Bench_v1.json", root / "images", limit=3)
    vlm = vlms["vit-tiny+sb"]
    images = [prepared_image("spatialrgpt", it) for it in items]
    batched = vlm.answer(images, [it.question for it in items], 6)
    assert batched == [vlm.answer([im], [it.question], 6)[0] for im, it in zip(images, items)]

    path = tmp_path / "answers.partial.jsonl"
    first = answer_all("spatialrgpt", vlm, items[:2], max_new_tokens=6, batch_size=2, answers_path=path,
                       progress=False)
    calls = []
    real = vlm.answer
    vlm.answer = lambda ims, qs, n: calls.append(len(qs)) or real(ims, qs, n)
    try:
        again = answer_all("spatialrgpt", vlm, items, max_new_tokens=6, batch_size=2, answers_path=path, progress=False)
    finally:
        vlm.answer = real
    assert again[:2] == first and calls == [1]  # only the third item was answered again


def _rewrite(src, dst, meta=None, tensors=None):
    from safetensors.torch import save_file

    from bench.spatialboost.checkpoint import read_metadata, read_tensors

    sd = read_tensors(src)
    sd.update(tensors or {})
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(dst), metadata={**read_metadata(src), **(meta or {})})


def test_errors_name_the_cause(trained, shared_home):
    from bench.encoders import load_encoder
    from bench.errors import NotTrainedError
    from bench.spatialboost.checkpoint import CheckpointError
    from bench.spatialboost.vlm_checkpoint import load_trained_vlm
    from bench.vlm.cli import load_vlm
    from bench.vlm.llm import MissingLLMError

    cpu = torch.device("cpu")
    stage2 = trained / "stage2.safetensors"
    keep = trained.parent / "stage2.keep"
    shutil.copy(stage2, keep)
    enc = load_encoder("vit-tiny")
    try:
        stage2.unlink()
        with pytest.raises(NotTrainedError, match=r"no VLM for vit-tiny: .*stage2\.safetensors.*bench sb train"):
            load_trained_vlm(enc, cpu, train_missing=False)
        _rewrite(keep, stage2, meta={"llm": "no-such-org/no-such-llm"})
        with pytest.raises(MissingLLMError, match="no-such-org/no-such-llm"):
            load_trained_vlm(enc, cpu, train_missing=False)
        shutil.copy(trained / "stage1.safetensors", stage2)
        with pytest.raises(CheckpointError, match="holds no LLM weights"):
            load_trained_vlm(enc, cpu, train_missing=False)
        w = torch.zeros(192, 384)  # a projector for a 384-d encoder (ViT-S), not vit-tiny's 192-d
        _rewrite(keep, stage2, tensors={"projector.0.weight": w})
        with pytest.raises(CheckpointError, match="takes 384-d vision features, but vit-tiny gives 192-d"):
            load_trained_vlm(enc, cpu, train_missing=False)
    finally:
        shutil.copy(keep, stage2)
    with pytest.raises(MissingLLMError, match="llava-hf/llava-1.5-7b-hf.*not on this machine"):
        load_vlm("llava-hf/llava-1.5-7b-hf", cpu)


def test_cli_writes_answers_and_scores(trained, shared_home, capsys):
    from bench.cli import main

    out = shared_home / "cli-out"
    rc = main(["vlm", "eval", "--vlm", "vit-tiny+sb", "--tasks", "blink-relative-depth-synth", "--out", str(out),
               "--set", "blink-relative-depth-synth.limit=4", "--set", "blink-relative-depth-synth.max_new_tokens=4",
               "--no-train", "--no-progress"])
    assert rc == 0
    scores = json.loads((out / "blink-relative-depth-synth" / "scores.json").read_text())
    assert scores["params"]["eval.items"] == 4 and "accuracy" in scores["metrics"]
    assert len((out / "blink-relative-depth-synth" / "answers.jsonl").read_text().splitlines()) == 4
    assert "blink-relative-depth-synth: accuracy =" in capsys.readouterr().out
    assert main(["vlm", "eval", "--vlm", "vit-tiny", "--tasks", "imagenet-knn"]) == 2  # not a VLM task


def test_llava_hf_checkpoint_loads_and_answers(tmp_path):
    """The LLaVA-1.5 path on a folder in the transformers format (a tiny random LLaVA written here):
    vicuna_v1 prompts, batched greedy answers equal one-by-one answers, text-only works."""
    from PIL import Image
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    from bench.vlm.generate import LlavaHF
    from bench.vlm.tokenizer import train_tokenizer

    tok = train_tokenizer(["A chat between a curious user and an assistant. USER: ASSISTANT: yes no red"] * 3, 300)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=14, projection_dim=32)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, pad_token_id=tok.pad_token_id,
                       eos_token_id=tok.eos_token_id)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tok.convert_tokens_to_ids("<image>"),
                      vision_feature_layer=-2, vision_feature_select_strategy="default", image_seq_length=4)
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(tmp_path)
    LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
                   tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                   num_additional_image_tokens=1).save_pretrained(tmp_path)
    vlm = LlavaHF(str(tmp_path), torch.device("cpu"))
    images = [Image.new("RGB", (40, 30), (200, 0, 0)), Image.new("RGB", (30, 40), (0, 200, 0))]
    questions = ["What color?", "Is it red? Answer yes or no."]
    batched = vlm.answer(images, questions, 5)
    assert batched == [vlm.answer([im], [q], 5)[0] for im, q in zip(images, questions)]
    assert len(vlm.answer([None, None], questions, 3)) == 2 and vlm.prompt_template == "vicuna_v1"


def test_skills_recipe_adds_train_scene_questions_only(shared_home):
    from bench.data.vlm_twin_recipe import build_skills_recipe
    from bench.spatialboost.data import build_recipe, load_recipe
    from bench.vlm.llava import LlavaDataset

    base = build_recipe("tiny", progress=False)
    recipe = load_recipe(build_skills_recipe(base, preset="tiny", out=shared_home / "skills"))
    skills = [s for s in json.loads(recipe.stage2.read_text()) if s["id"].startswith("skills_")]
    answers = [s["conversations"][1]["value"] for s in skills]
    assert {"(A)", "(B)", "yes", "no"} <= set(answers) and any("Region [" in a for a in answers)
    train = set(base.manifest["synth"]["scenes"])
    assert {s["id"].split("_")[1] + "_" + s["id"].split("_")[2] for s in skills} <= train  # never a val scene
    assert recipe.manifest_hash != base.manifest_hash and recipe.tokenizer_dir.resolve() == base.tokenizer_dir.resolve()
    ds = LlavaDataset(recipe.stage2, recipe.image_root)
    assert len(ds) == len(json.loads(base.stage2.read_text())) + len(skills) and ds[len(ds) - 1]["images"]
