"""The CortexBench behaviour-cloning task (eai-vc `bc_pvr_train_loop`), one suite env per task:
demos (recorded once, cached) -> frozen embeddings (cached per encoder) -> FLARE history + proprio
-> input-BN MLP fitted with MSE / Adam -> evaluated on the seeded episodes after the scheduled
epochs; the score is the best evaluation, averaged over the protocol seeds by `RolloutTask`.

Resumable at epoch granularity: the policy, optimiser, shuffling RNG and the evaluations so far are
saved after every epoch (`<state>/<env>/seed<s>/train.pt`); a killed run restarts at its last epoch.

Test hook: subclasses may override `observe` / `embed_observations` / `embedding_name` /
`needs_pixels` (tests/test_robot.py's state oracle does); the task itself always encodes pixels."""
from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data.synth.gl import select_gl_backend
from bench.features import FeatureSpec
from bench.task import RolloutTask, TaskResult
from tasks.robot import artifacts
from tasks.robot.config import BCConfig, Counts, eval_epochs
from tasks.robot.demos import DemoKey, demo_set, load_demo, preprocess_frames
from tasks.robot.official import find_pickle, load_official_demos
from tasks.robot.fusion import flare_sequence
from tasks.robot.policy import BCPolicy, best_over, make_optimizer, train_epoch
from tasks.robot.rollout import evaluate
from tasks.robot.suites import expert_id, make_env, make_expert

CLS = FeatureSpec(("cls",), 1)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class CortexBenchBC(RolloutTask):
    Config = BCConfig
    needs_pixels = True  # False only for test oracles: demos and evals then skip rendering
    uses_history = True  # FLARE history (eai-vc mujoco_vc); TriFinger's loop has none
    mujoco_render = True  # shadow map / GL backend params apply (False: PyBullet's TinyRenderer)
    demo_min_score: float | None = None  # demos kept iff score > 0 (None) or >= this

    # ------------------------------------------------------------------ the resolved protocol
    @property
    def suite(self) -> str:
        return self.options["suite"]

    def run(self, ctx, cfg: BCConfig) -> TaskResult:
        self._cfg = cfg
        self._counts: Counts = cfg.counts(self.suite)
        self._shadowsize = (cfg.shadowsize or (4096 if ctx.device.type == "cuda" else 1024)) if self.mujoco_render else 0
        self._eval_envs: list = []
        c = self._counts
        ctx.log_params(**{"bc.demos": c.demos, "bc.eval_episodes": c.eval_episodes, "bc.epochs": c.epochs,
                          "bc.eval_epochs": ",".join(map(str, sorted(self.eval_schedule(c)))),
                          "bc.seeds": ",".join(map(str, c.seeds)), "render.shadowsize": self._shadowsize,
                          "render.size": cfg.image_size, "render.reflection": cfg.reflection, "render.gl": (select_gl_backend() if self.mujoco_render else "pybullet-tinyrenderer") if self.needs_pixels else "none", "bc.embedding": self.embedding_name(ctx)})
        try:
            result = super().run(ctx, cfg)
        finally:
            for env in self._eval_envs:
                env.close()
            self._eval_envs = []
        return result

    def seeds(self, ctx) -> tuple[int, ...]:
        """The config's protocol seeds (TaskMeta.seeds holds the paper's, as metadata)."""
        return self._counts.seeds

    def envs(self, cfg: BCConfig):
        return (self.options["env"],)

    def _make_env(self, env: str, render: bool):
        return make_env(self.suite, env, image_size=self._cfg.image_size, shadowsize=self._shadowsize,
                        reflection=self._cfg.reflection, render=render)

    def _env_and_expert(self, env: str):
        e = self._make_env(env, self.needs_pixels)
        return e, make_expert(self.suite, env, e)

    # ---------------------------------------------------------------- observation -> embedding
    def embedding_name(self, ctx) -> str:
        return f"{ctx.encoder.name}-cls"

    def observe(self, env) -> np.ndarray:
        return env.render()

    def demo_observations(self, demo: dict[str, np.ndarray]) -> np.ndarray:
        return demo["frames"]

    def embed_observations(self, ctx, frames: np.ndarray) -> np.ndarray:
        x = preprocess_frames(frames, ctx.encoder.preprocess)
        return ctx.encode(x, CLS)["cls"][:, -1].float().cpu().numpy()

    # ------------------------------------------------------------------- the loop's variants
    gif_every = 5  # eval steps between GIF frames

    def policy_inputs(self, emb: np.ndarray, proprio: np.ndarray | None) -> np.ndarray:
        """(T, D) embeddings (+ (T, P) proprio) of one demo -> (T, in_dim) policy inputs (FLARE here)."""
        return flare_sequence(emb, proprio)

    def build_policy(self, cfg: BCConfig, in_dim: int, out_dim: int, seed: int) -> torch.nn.Module:
        return BCPolicy(in_dim, out_dim, tuple(cfg.hidden), cfg.last_layer_scale, seed=seed)

    def build_optimizer(self, cfg: BCConfig, policy: torch.nn.Module) -> torch.optim.Optimizer:
        return make_optimizer(policy, cfg.lr)

    def eval_schedule(self, c: Counts) -> set[int]:
        """0-based epochs after which to evaluate (-1: before training)."""
        return set(eval_epochs(c.epochs, c.eval_every))

    def eval_base_seed(self, cfg: BCConfig, seed: int) -> int:
        """Evaluation episode ep is seeded base + ep; eai-vc mujoco_vc: base = the protocol seed."""
        return seed

    # -------------------------------------------------------------------------------- hooks
    def demos(self, ctx, cfg: BCConfig, env: str) -> dict[str, Any]:
        """The official CortexBench pickle when present (ctx.root = $BENCH_CORTEXBENCH, sources.py), else
        demos recorded by the suite's expert; embeddings cached per (demo set, encoder)."""
        pickle = find_pickle(ctx.root, self.suite, env) if self.needs_pixels else None
        if pickle is not None:
            probe = self._make_env(env, False)
            dims = (probe.action_dim, probe.proprio_dim)
            probe.close()
            loaded = load_official_demos(pickle, self.suite, self._counts.demos, *dims)
            tag = f"official-{pickle.stem}-{pickle.stat().st_size}b-n{len(loaded)}"
            ctx.log_params(**{"demos.source": f"official CortexBench pickle {pickle}"})
            observations = [lambda d=d: self.demo_observations(d) for d in loaded]
            labels = [(d["proprio"], d["actions"]) for d in loaded]
        else:
            key = DemoKey(self.suite, env, cfg.image_size, self._shadowsize, self.needs_pixels, cfg.reflection,
                          expert=expert_id(self.suite, env))
            root = ctx.cache.root.parent / "robot-demos"
            paths, stats = demo_set(root, key, self._counts.demos, cfg.demo_seed, cfg.demo_attempts,
                                    lambda: self._env_and_expert(env), log=ctx.log, min_score=self.demo_min_score)
            tag = f"{key.folder}-n{len(paths)}-seed{cfg.demo_seed}" + (
                "" if self.demo_min_score is None else f"-min{self.demo_min_score:g}")
            ctx.log_params(**{"demos.source": f"generated by the {self.suite} expert{' ' + key.expert if key.expert else ''}",
                              "demos.expert_success": round(stats["expert_success"], 2)})
            observations = [lambda p=p: self.demo_observations(load_demo(p, frames=self.needs_pixels)) for p in paths]
            labels = [(d["proprio"], d["actions"]) for d in (load_demo(p, frames=False) for p in paths)]
        cache = ctx.state_dir("embeddings") / f"{tag}-{self.embedding_name(ctx)}.npz"
        if cache.exists():
            with np.load(cache) as z:
                embs = [z[f"emb{i}"] for i in range(len(labels))]
        else:
            embs = []
            for get in observations:
                obs = get()
                embs.append(np.concatenate([self.embed_observations(ctx, obs[s:s + cfg.encode_chunk])
                                            for s in range(0, len(obs), cfg.encode_chunk)]))
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, **{f"emb{i}": e for i, e in enumerate(embs)})
            os.replace(tmp, cache)
        xs = [self.policy_inputs(emb, proprio if cfg.proprio else None) for emb, (proprio, _) in zip(embs, labels)]
        ys = [actions for _, actions in labels]
        ctx.log_params(**{"demos.count": len(labels), "demos.samples": int(sum(len(y) for y in ys)),
                          "bc.embed_dim": int(embs[0].shape[1])})
        return {"x": np.concatenate(xs).astype(np.float32), "y": np.concatenate(ys).astype(np.float32)}

    def expert_score(self, env: str, seed: int) -> float | None:
        """The demonstrator on the same evaluation episodes (seeds seed + ep), state only: the reference row.
        None when the suite has no expert here (official demos without a trained SAC expert)."""
        probe = self._make_env(env, False)
        try:
            expert = make_expert(self.suite, env, probe)
        except FileNotFoundError:
            probe.close()
            return None
        scores = []
        base = self.eval_base_seed(self._cfg, seed)
        try:
            for ep in range(self._counts.eval_episodes):
                probe.reset(base + ep)
                scores.append(probe.score([probe.step(expert.act(probe)) for _ in range(probe.horizon)]))
        finally:
            probe.close()
        return statistics.fmean(scores)

    def _evaluate(self, ctx, env: str, policy: BCPolicy, base_seed: int, record: bool):
        n = self._counts.eval_episodes
        while len(self._eval_envs) < n:
            self._eval_envs.append(self._make_env(env, self.needs_pixels))
        envs = self._eval_envs[:n]
        scores, frames = evaluate(envs, self.eval_base_seed(self._cfg, base_seed), self.observe,
                                  lambda obs: self.embed_observations(ctx, obs), policy.act,
                                  use_proprio=self._cfg.proprio, record=0 if record else -1,
                                  record_every=self.gif_every, record_n=min(3, n), history=self.uses_history)
        return statistics.fmean(scores), frames

    def train_policy(self, ctx, cfg: BCConfig, env: str, demos: dict[str, Any], seed: int, state: Path) -> dict:
        c = self._counts
        x, y = torch.from_numpy(demos["x"]), torch.from_numpy(demos["y"])
        policy = self.build_policy(cfg, x.shape[1], y.shape[1], seed)
        opt = self.build_optimizer(cfg, policy)
        gen = torch.Generator().manual_seed(seed)
        schedule = self.eval_schedule(c)
        ckpt = state / "train.pt"
        evals: list[tuple[int, float]] = []
        losses: list[float] = []
        best_state = None
        start = 0
        if ckpt.exists():
            saved = torch.load(ckpt, weights_only=False)
            policy.load_state_dict(saved["policy"])
            opt.load_state_dict(saved["opt"])
            gen.set_state(saved["gen"])
            evals, losses, best_state = saved["evals"], saved["losses"], saved["best"]
            start = saved["epoch"] + 1
            ctx.log.info("%s seed %d: resumed training at epoch %d", env, seed, start)
        if start == 0 and -1 in schedule:  # TriFinger evaluates the untrained policy too ("epoch -1")
            success, _ = self._evaluate(ctx, env, policy, seed, record=False)
            best_state = {k: v.clone() for k, v in policy.state_dict().items()}
            evals.append((-1, success))
            ctx.log.info("%s seed %d before training: success %.1f%%", env, seed, success)
        for epoch in range(start, c.epochs):
            loss = train_epoch(policy, opt, x, y, cfg.batch_size, gen)
            losses.append(loss)
            logged = {f"{env}/seed{seed}/train_loss": loss}
            if epoch in schedule:
                last = epoch == c.epochs - 1
                success, frames = self._evaluate(ctx, env, policy, seed, record=last and cfg.gif and self.needs_pixels)
                if not evals or success > max(v for _, v in evals):
                    best_state = {k: v.clone() for k, v in policy.state_dict().items()}
                evals.append((epoch, success))
                logged[f"{env}/seed{seed}/eval_success"] = success
                ctx.log.info("%s seed %d epoch %d: loss %.4f, success %.1f%%", env, seed, epoch, loss, success)
                if frames:
                    artifacts.write_gif(ctx.artifact_path(f"{env}_seed{seed}_eval_episodes.gif"), frames)
            ctx.log_metrics(logged, step=epoch)
            _atomic_torch_save({"epoch": epoch, "policy": policy.state_dict(), "opt": opt.state_dict(),
                                "gen": gen.get_state(), "evals": evals, "losses": losses, "best": best_state}, ckpt)
        best, best_epoch = best_over(evals)
        artifacts.write_curve(ctx.artifact_path(f"{env}_seed{seed}_curve.png"), losses, evals, f"{env} seed {seed}")
        return {"best": best, "best_epoch": best_epoch, "evals": evals}

    def rollout(self, ctx, cfg: BCConfig, env: str, policy: dict, seed: int) -> dict[str, float]:
        """The evaluations ran during training (best over them is the protocol's score)."""
        out = {"success": float(policy["best"]), "best_epoch": float(policy["best_epoch"])}
        expert = self.expert_score(env, seed)
        return out if expert is None else {**out, "expert": expert}


__all__ = ["CortexBenchBC"]
