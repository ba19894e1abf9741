"""Self-supervised pretraining of offline encoders on the synthetic scenes (`bench pretrain NAME`).

`vit-tiny-synth` is the ViT-Ti/16 of `vit-tiny`, pretrained here by DINO self-distillation on the
synthetic scenes' training images only, so that the offline benchmark has an encoder worth boosting.
Code map: `recipe.py` (the recipe and where its result lives; light), `data.py` (training images,
data hash, multi-crop), `dino.py` (head, loss, schedules), `trainer.py` (the resumable loop),
`provider.py` (the runner's plan step), `cli.py` (`bench pretrain`). Light: no torch at import.
"""
