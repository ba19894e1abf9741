import math

import torch

from heads.knn import KnnConfig, knn_classify, knn_vote


def test_vote_matches_hand_computation():
    # 1 query, neighbours sorted by similarity: labels [0, 1, 1], sims [0.9, 0.8, 0.7], T = 0.1
    sims = torch.tensor([[0.9, 0.8, 0.7]])
    labels = torch.tensor([[0, 1, 1]])
    scores = knn_vote(sims, labels, num_classes=2, k=3, temperature=0.1)
    assert math.isclose(scores[0, 0].item(), math.exp(9), rel_tol=1e-5)
    assert math.isclose(scores[0, 1].item(), math.exp(8) + math.exp(7), rel_tol=1e-5)
    # exp(9) = 8103 > exp(8)+exp(7) = 4078: class 0 wins with k=3; with k=1 too
    assert scores.argmax().item() == 0
    # at a higher temperature the two votes for class 1 outweigh the single closest one
    assert knn_vote(sims, labels, 2, 3, 10.0).argmax().item() == 1


def test_knn_classify_on_hand_made_features():
    # train: class 0 near +x, class 1 near +y; 2-D features (cosine ignores the norm)
    train = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.9, -0.1], [0.0, 1.0], [0.1, 3.0], [-0.1, 1.0]])
    ytrain = torch.tensor([0, 0, 0, 1, 1, 1])
    test = torch.tensor([[1.0, 0.2], [0.2, 1.0], [1.0, 0.95]])
    ytest = torch.tensor([0, 1, 0])
    out = knn_classify(train, ytrain, test, ytest, 2, KnnConfig(ks=(1, 3), temperature=0.07))
    # query 3 at ~44 deg: closest is [2.0, 0.1]? cos with (1,0.95): compute by hand
    q = torch.nn.functional.normalize(test, dim=1)
    t = torch.nn.functional.normalize(train, dim=1)
    nearest = (q @ t.T).argmax(1)
    expected_top1_k1 = (ytrain[nearest] == ytest).float().mean().item() * 100
    assert math.isclose(out["top1_k1"], expected_top1_k1, abs_tol=1e-4)
    assert out["top1_k3"] == 100.0 and out["top5_k3"] == 100.0


def test_k_larger_than_train_set_is_capped():
    train = torch.randn(5, 4)
    out = knn_classify(train, torch.tensor([0, 1, 0, 1, 0]), train, torch.tensor([0, 1, 0, 1, 0]), 2,
                       KnnConfig(ks=(10, 200)))
    assert set(out) == {"top1_k10", "top5_k10", "top1_k200", "top5_k200"}
    assert out["top1_k10"] == out["top1_k200"]
