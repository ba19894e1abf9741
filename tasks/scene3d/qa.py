"""scanqa-vlr / sqa3d-vlr / synth-scanqa-vlr: a Q-Former over the scene's lifted point features into a
frozen seq2seq LM; BLEU-1 (pycocoevalcap's corpus BLEU on PTB tokens) and exact match (§3.3)."""
from __future__ import annotations

import math
import statistics
from collections import Counter

import numpy as np
import torch

from bench.data.scannet import load_instances
from bench.data.scannet_lang import read_scanqa, read_sqa3d
from bench.task import ItemScores, Task, TaskResult
from bench.metrics.bleu import bleu1_rows, corpus_bleu
from heads.scene3d.qa import SceneQA, clean_answer, point_embeds, tiny_t5
from tasks.scene3d.config import QAConfig, default_config
from tasks.scene3d.scenes import SceneSet

VOXEL = 0.05


def scene_input(scene, cfg: QAConfig) -> torch.Tensor:
    """The first n_points kept points (quirk 4) or a seeded random subset, zero-padded, with the 3D
    positional embedding of their voxel indices (identity axis alignment)."""
    idx = torch.nonzero(scene.keep).flatten()
    if not cfg.first_points and len(idx) > cfg.n_points:
        idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(cfg.train_seed))[:cfg.n_points]]
    idx = idx[:cfg.n_points]
    xyz = torch.from_numpy(scene.points.coords[idx.numpy()])
    vox = torch.floor((xyz - torch.from_numpy(scene.points.coords).min(0).values) / VOXEL)
    emb = point_embeds(scene.feat[idx], vox)
    return torch.cat([emb, torch.zeros(cfg.n_points - len(idx), emb.shape[1])]) if len(idx) < cfg.n_points else emb


def load_lm(cfg: QAConfig, corpus: list[str]):
    """(lm, tokenizer, label): FlanT5-XL when present locally (lm=auto|flan-t5-xl), else the tiny one."""
    if cfg.lm in ("auto", "flan-t5-xl"):
        from bench.vlm.llm import MissingLLMError, resolve_llm_path

        try:
            path = resolve_llm_path("google/flan-t5-xl")
            from transformers import AutoTokenizer, T5ForConditionalGeneration

            return (T5ForConditionalGeneration.from_pretrained(str(path), local_files_only=True),
                    AutoTokenizer.from_pretrained(str(path), local_files_only=True), "google/flan-t5-xl")
        except MissingLLMError:
            if cfg.lm == "flan-t5-xl":
                raise
    from bench.vlm.tokenizer import train_tokenizer

    tok = train_tokenizer(corpus, vocab_size=1024, min_frequency=1)
    return (tiny_t5(len(tok), tok.pad_token_id, tok.eos_token_id, cfg.train_seed), tok,
            "tiny-offline-random-init-t5 (not FlanT5)")


class SceneQATask(Task):
    Config = QAConfig

    def __init__(self, meta, synthetic: bool = False, dataset: str = "scanqa"):
        super().__init__(meta)
        self.synthetic, self.dataset = synthetic, dataset

    def default_config(self):
        return default_config("qa", self.synthetic)

    def items(self, data: SceneSet, split: str):
        if self.dataset == "sqa3d":
            return read_sqa3d(data.root / "sqa3d", split)
        return read_scanqa(data.root / "scanqa" / f"ScanQA_v1.0_{split}.json")

    def run(self, ctx, cfg: QAConfig) -> TaskResult:
        eval_split = "test" if self.dataset == "sqa3d" else "val"
        data = SceneSet(ctx, cfg)
        inputs, skipped = {}, 0
        sets = {}
        for split, scene_split in (("train", "train"), (eval_split, "val")):
            have = set(data.ids[scene_split])
            kept = []
            for q in self.items(data, split):
                if q.scene_id not in have:
                    skipped += 1
                    continue
                if q.scene_id not in inputs:
                    i = data.ids[scene_split].index(q.scene_id)
                    s = data.scene(scene_split, q.scene_id, i)
                    inst_file = data.root / "scannetv2" / scene_split / f"{q.scene_id}.pth"
                    ids = set(np.unique(load_instances(data.root, scene_split, q.scene_id, len(s.points.coords))).tolist()) \
                        if inst_file.exists() else None
                    inputs[q.scene_id] = (scene_input(s, cfg), ids)
                ids = inputs[q.scene_id][1]
                if ids is not None and q.object_ids and not set(q.object_ids) <= ids:
                    skipped += 1  # a question about an object that is not in the scene: counted, not scored
                    continue
                kept.append(q)
            sets[split] = kept
        data.log_cache()
        train, val = sets["train"], sets[eval_split]
        text = lambda q: (q.situation + " " + q.question) if cfg.use_situation and q.situation else q.question  # noqa: E731
        lm, tok, label = load_lm(cfg, [text(q) for q in train] + [a for q in train for a in q.answers])
        ctx.log_params(lm_used=label, questions_train=len(train), questions_eval=len(val), questions_skipped=skipped)
        torch.manual_seed(cfg.train_seed)
        model = SceneQA(next(iter(inputs.values()))[0].shape[1], lm, cfg.queries, cfg.qformer_width, cfg.qformer_layers)
        samples = [(q, a) for q in train for a in dict.fromkeys(q.answers)]  # each distinct answer is a target
        self.fit(ctx, cfg, model, tok, samples, inputs, text)
        preds = self.predict(cfg, model, tok, val, inputs, text)
        refs = {q.question_id: list(q.answers) for q in val}
        hyps = {q.question_id: preds[q.question_id] for q in val}
        majority = Counter(a for q in train for a in q.answers).most_common(1)[0][0]
        scores, impl = corpus_bleu(refs, hyps, cfg.bleu)
        ctx.log_params(bleu_implementation=impl)
        m = {"bleu1": 100 * scores[0], "exact_match": 100 * statistics.fmean(hyps[k] in refs[k] for k in refs),
             "majority_bleu1": 100 * corpus_bleu(refs, {k: majority for k in refs}, impl)[0][0],
             "majority_exact_match": 100 * statistics.fmean(majority in refs[k] for k in refs)}
        items = {"bleu1": ItemScores(bleu1_rows(refs, hyps, impl), "bleu1", 100.0),
                 "exact_match": ItemScores(np.array([float(hyps[k] in refs[k]) for k in hyps]), "mean", 100.0)}
        return TaskResult(m, items=items)

    def _batch(self, tok, qs, inputs, text):
        enc = tok([text(q) for q in qs], return_tensors="pt", padding=True)
        pc = torch.stack([inputs[q.scene_id][0] for q in qs])
        return pc, enc["input_ids"], enc["attention_mask"]

    def fit(self, ctx, cfg, model, tok, samples, inputs, text, batch: int = 8) -> None:
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0}],
                                lr=cfg.lr, betas=(0.9, 0.999))
        steps = cfg.epochs * math.ceil(len(samples) / batch)
        warm = max(1, min(1000, steps // 10))
        g = torch.Generator().manual_seed(cfg.train_seed)
        step = 0
        for epoch in range(cfg.epochs):
            model.train()
            losses = []
            for b in torch.randperm(len(samples), generator=g).split(batch):
                qs, answers = zip(*[samples[i] for i in b.tolist()])
                lr = cfg.lr * (step + 1) / warm if step < warm else \
                    1e-5 + (cfg.lr - 1e-5) * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))
                for grp in opt.param_groups:
                    grp["lr"] = lr
                pc, ids, mask = self._batch(tok, qs, inputs, text)
                lab = [tok(a)["input_ids"] + [tok.eos_token_id] for a in answers]
                width = max(len(x) for x in lab)
                labels = torch.tensor([x + [-100] * (width - len(x)) for x in lab])
                loss = model.loss(pc, ids, mask, labels)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                step += 1
            ctx.log_metrics({"qa_train_loss": statistics.fmean(losses)}, epoch)

    def predict(self, cfg, model, tok, qs, inputs, text, batch: int = 16) -> dict[str, str]:
        model.eval()
        out = {}
        for s in range(0, len(qs), batch):
            chunk = qs[s:s + batch]
            pc, ids, mask = self._batch(tok, chunk, inputs, text)
            gen = model.answer(pc, ids, mask, cfg.max_new_tokens)
            for q, g in zip(chunk, tok.batch_decode(gen, skip_special_tokens=True)):
                out[q.question_id] = clean_answer(g)
        return out
