"""examples/_evaluation.py: kNN against a float64 oracle, the feature probe, the shared loops.

The kNN and the probes embed with ``w2reg.adapters.callbacks.embed_labelled`` and measure on
the epochs ``epoch_due`` picks, the same code as ``UniformityMonitor``; checked here through
a real Trainer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from example_scripts import load_example
from quiet_trainer import trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("lightly")

from w2reg.adapters.callbacks import UniformityMonitor, embed_labelled  # noqa: E402


@pytest.fixture(scope="module")
def ev():
    return load_example("_evaluation")


def knn_oracle(bank, bank_y, feats, k, t, num_classes):
    """Weighted kNN in float64: top-k cosine neighbours vote with weight exp(sim / t)."""
    sims = feats.astype(np.float64) @ bank.astype(np.float64).T
    preds = []
    for row in sims:
        top = np.argsort(-row)[:k]
        votes = np.zeros(num_classes)
        for j in top:
            votes[bank_y[j]] += np.exp(row[j] / t)
        preds.append(int(np.argmax(votes)))
    return np.array(preds)


def test_knn_matches_the_oracle_across_chunks(ev):
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    bank_y = torch.arange(300) % 5
    test_y = torch.arange(1100) % 5  # more than one chunk of 1024 queries
    noise = 0.9
    bank = torch.nn.functional.normalize(
        centres[bank_y] + noise * torch.randn(300, 16, generator=g)
    )
    test = torch.nn.functional.normalize(
        centres[test_y] + noise * torch.randn(1100, 16, generator=g)
    )
    for k in (1, 20, 500):  # 500 > bank: clipped to the bank's size
        got = ev.knn_from_features(bank, bank_y, test, test_y, num_classes=5, k=k, t=0.1)
        pred = knn_oracle(bank.numpy(), bank_y.numpy(), test.numpy(), min(k, 300), 0.1, 5)
        assert got == pytest.approx(100.0 * float((pred == test_y.numpy()).mean()), abs=0.1)
    assert 30 < got < 100  # informative, not trivial


def test_feature_probe_learns_a_linear_rule(ev):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(600, 12, generator=g) * 5 + 3  # unstandardised on purpose
    w = torch.randn(12, 4, generator=g)
    y = (x @ w).argmax(1)
    acc = ev.feature_probe(x[:400], y[:400], x[400:], y[400:], num_classes=4, epochs=30)
    assert acc > 90
    shuffled = y[torch.randperm(600, generator=g)]
    chance = ev.feature_probe(x[:400], shuffled[:400], x[400:], shuffled[400:], num_classes=4)
    majority = 100.0 * float(torch.bincount(shuffled[400:]).max()) / 200
    assert chance < majority + 10  # nothing to learn from shuffled labels


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(6, 5)
        self.projection_head = nn.Linear(5, 3)

    def forward(self, x):
        return self.backbone(x)


def test_embed_labelled_keeps_order_and_needs_targets():
    x = torch.randn(10, 6)
    y = torch.arange(10) * 3
    model = Tiny().train()
    (feats,), targets = embed_labelled(
        model, DataLoader(TensorDataset(x, y), batch_size=4), head=None
    )
    assert torch.equal(targets, y) and model.training  # mode restored
    torch.testing.assert_close(feats, model.backbone(x).detach())
    (proj,), _ = embed_labelled(model, DataLoader(TensorDataset(x, y), batch_size=4))
    torch.testing.assert_close(proj, model.projection_head(model.backbone(x)).detach())
    with pytest.raises(ValueError, match=r"\(images, targets, \.\.\.\)"):
        embed_labelled(model, DataLoader(x, batch_size=4))


def test_knn_monitor_and_uniformity_monitor_measure_on_the_same_epochs(ev):
    from w2reg.adapters.lightly import create_model

    def image_batches(n):
        g = torch.Generator().manual_seed(2)
        images = torch.randn(n, 3, 8, 8, generator=g)
        return TensorDataset(images, torch.arange(n) % 2)

    class Views(TensorDataset):
        def __getitem__(self, i):
            image, target = super().__getitem__(i)
            return [image, image.flip(-1)], target

    model = create_model(
        "simclr",
        backbone=nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        feature_dim=4,
        proj_hidden_dim=8,
        proj_output_dim=4,
        max_epochs=5,
    )
    labelled = DataLoader(image_batches(16), batch_size=8)
    knn = ev.KNNMonitor(labelled, labelled, num_classes=2, every_n_epochs=2, k=3)
    uniformity = UniformityMonitor(labelled, every_n_epochs=2, log_images=False)
    base = image_batches(16)
    train = DataLoader(Views(*base.tensors), batch_size=8, drop_last=True)
    trainer(max_epochs=5, callbacks=[knn, uniformity]).fit(model, train)
    assert [epoch for epoch, _ in knn.history] == [1, 3, 4]  # every 2nd and the last
    assert [m["epoch"] for m in uniformity.history] == [1, 3, 4]
