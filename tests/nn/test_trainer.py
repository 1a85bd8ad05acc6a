import logging

import numpy as np
import pytest
import torch

from harmonic_seg.guides import embedding_map, embedding_table
from harmonic_seg.guides import random_guides
from harmonic_seg.nn.augment import random_rotation, random_scale_flip, resize_bilinear, resize_nearest
from harmonic_seg.nn.data import CropSampler, crop_sample
from harmonic_seg.nn import resolve_amp
from harmonic_seg.nn._train_utils import _check_cpu_bfloat16
from harmonic_seg.nn.trainer import Callback, TrainConfig, Trainer
from harmonic_seg.nn.unet import HarmonicUNet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_data(n=3, shape=(72, 80), seed=0):
    """Images of bright rectangles on a noisy background with their label maps."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros(shape, np.int32)
        for k in range(1, 7):
            y, x = rng.integers(0, shape[0] - 14), rng.integers(0, shape[1] - 14)
            lab[y:y + rng.integers(6, 14), x:x + rng.integers(6, 14)] = k
        img = (lab > 0).astype(np.float32) + 0.1 * rng.standard_normal(shape).astype(np.float32)
        images.append(img[None])
        labels.append(lab)
    return images, labels


GUIDES = random_guides(4, (72, 80), random_state=0)


def make_net(seed=0):
    torch.manual_seed(seed)
    return HarmonicUNet(1, 4, GUIDES, depth=2, base_width=8)


def cfg(**kw):
    base = dict(epochs=3, steps_per_epoch=3, batch_size=2, crop_size=64, validation_fraction=0.34,
                random_state=0, num_threads=1)
    base.update(kw)
    return TrainConfig(**base)


# --- data pipeline -----------------------------------------------------------
def test_resize_helpers():
    img = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    assert resize_bilinear(img, (3, 4)).tolist() == img.tolist()
    ref = torch.nn.functional.interpolate(torch.from_numpy(img)[None], size=(5, 7), mode="bilinear",
                                          align_corners=False)[0].numpy()
    np.testing.assert_allclose(resize_bilinear(img, (5, 7)), ref, atol=1e-5)
    lab = np.array([[1, 2], [3, 4]])
    assert resize_nearest(lab, (4, 4)).tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]


def test_sampler_targets_in_full_augmented_frame():
    images, labels = make_data(1, shape=(50, 60))
    s = CropSampler(images, labels, GUIDES, crop_size=32, scale_range=None, flips=False)
    img, tgt, lab, ign, origin = s.sample(np.random.default_rng(1))
    y0, x0 = origin.astype(int)
    full = embedding_map(labels[0], GUIDES)
    np.testing.assert_array_equal(tgt, full[:, y0:y0 + 32, x0:x0 + 32])
    np.testing.assert_array_equal(img, images[0][:, y0:y0 + 32, x0:x0 + 32])
    assert lab.tolist() == labels[0][y0:y0 + 32, x0:x0 + 32].tolist() and not ign.any()  # instance ids kept


def test_sampler_pads_small_images_and_is_deterministic():
    images, labels = make_data(2, shape=(40, 30))
    s = CropSampler(images, labels, GUIDES, crop_size=48, scale_range=(0.9, 1.1))
    a = s.batch(np.random.default_rng(5), 3)
    b = s.batch(np.random.default_rng(5), 3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    img, tgt, fg, ign, origin = a
    assert img.shape == (3, 1, 48, 48) and tgt.shape == (3, 4, 48, 48) and origin.shape == (3, 2)
    assert ign[:, -1, :].all() and ign[:, :, -1].all()  # padded rows/cols ignored
    assert (origin == 0).all()  # padding only at the bottom/right
    pad = ign & (img[:, 0] == 0)
    assert not fg[pad].any() and (np.moveaxis(tgt, 1, -1)[pad] == 0).all()


def test_random_scale_flip_consistent():
    images, labels = make_data(1, shape=(40, 40))
    img, lab, ign = random_scale_flip(images[0], labels[0], np.zeros((40, 40), bool), np.random.default_rng(0),
                                      scale_range=(1.5, 1.5), flips=True)
    assert img.shape == (1, 60, 60) and lab.shape == (60, 60) and ign.shape == (60, 60)
    assert set(np.unique(lab)) <= set(np.unique(labels[0]))


def test_random_rotation_keeps_instances_and_ignores_what_comes_from_outside():
    images, labels = make_data(1, shape=(40, 56))
    ign0 = np.zeros((40, 56), bool)
    ign0[20:22] = True  # two ignored rows inside the image
    areas = np.bincount(labels[0].ravel())
    for seed in range(4):
        img, lab, ign = random_rotation(images[0], labels[0], ign0, np.random.default_rng(seed))
        assert img.shape[1:] == lab.shape == ign.shape and img.dtype == np.float32
        assert lab.shape[0] >= 40 and lab.shape[1] >= 40  # the frame holds the whole rotated image
        # every instance keeps its id and (to nearest-neighbour rounding) its area
        new = np.bincount(lab.ravel(), minlength=len(areas))
        np.testing.assert_allclose(new[1:], areas[1:], rtol=0.1, atol=3)
        # the pixels from outside the image: ignored, background, black; the rest: as many as before
        _, _, ign_none = random_rotation(images[0], labels[0], np.zeros_like(ign0), np.random.default_rng(seed))
        assert abs(int((~ign_none).sum()) - 40 * 56) <= 0.05 * 40 * 56  # as many pixels from the image as before
        assert abs(int(ign.sum() - ign_none.sum()) - 2 * 56) <= 0.2 * 2 * 56  # the two ignored rows stay ignored
        outside = ign & (lab == 0) & (img[0] == 0)
        assert outside.sum() >= lab.size - 40 * 56 - 0.05 * lab.size


def test_sampler_rotation_targets_in_rotated_frame():
    images, labels = make_data(1, shape=(50, 60))
    s = CropSampler(images, labels, GUIDES, crop_size=96, scale_range=None, flips=False, rotate=True)
    img, tgt, lab, ign, origin = s.sample(np.random.default_rng(3))
    assert (origin == 0).all()  # a 96-px crop holds the whole rotated 50 x 60 frame
    np.testing.assert_allclose(tgt, embedding_map(lab, GUIDES), atol=1e-6)
    assert ign.any() and not lab[ign & (img[0] == 0)].any()


# --- training ----------------------------------------------------------------
def test_training_reduces_loss():
    images, labels = make_data(3)
    net = make_net()
    tr = Trainer(net, GUIDES, cfg(epochs=6, steps_per_epoch=4, learning_rate=3e-3, validation_fraction=0,
                                  lr_schedule="constant"))
    tr.fit(images, labels)
    losses = [r["train_loss"] for r in tr.history]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert tr.history[0]["val_loss"] is None and not net.training
    assert set(tr.history[0]) == {"epoch", "train_loss", "train_l1", "train_fg", "val_loss", "val_l1", "lr", "dur"}


def test_training_with_rotations_runs_and_is_reproducible():
    images, labels = make_data(2)
    runs = [Trainer(make_net(), GUIDES, cfg(epochs=2, rotate=True)).fit(images, labels) for _ in range(2)]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]
    assert all(np.isfinite(h["train_loss"]) for h in runs[0].history)


def test_resolve_amp(monkeypatch, caplog):
    assert resolve_amp(None, "cpu") is None and resolve_amp(False, "cpu") is None
    assert resolve_amp(None, "cuda") is torch.float16 and resolve_amp(True, "cuda") is torch.float16
    assert resolve_amp(False, "cuda") is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    _check_cpu_bfloat16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.nn._train_utils"):
        assert resolve_amp(True, "cpu") is torch.bfloat16
    assert not caplog.records
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    _check_cpu_bfloat16.cache_clear()
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.nn._train_utils"):
        assert resolve_amp(True, "cpu") is torch.bfloat16
        assert resolve_amp(True, "cpu") is torch.bfloat16
    assert caplog.text.count("emulated") == 1  # once per process, not once per image
    _check_cpu_bfloat16.cache_clear()


def test_bfloat16_training_on_cpu_learns_and_is_reproducible():
    images, labels = make_data(3)
    runs = []
    for _ in range(2):
        net = make_net()
        tr = Trainer(net, GUIDES, cfg(epochs=6, steps_per_epoch=4, learning_rate=3e-3, lr_schedule="constant",
                                      amp=True, device="cpu")).fit(images, labels)
        runs.append(tr)
    tr = runs[0]
    assert tr.amp_ and tr.amp_dtype_ is torch.bfloat16
    assert all(p.dtype == torch.float32 for p in tr.module.parameters())  # autocast, weights stay float32
    losses = [r["train_loss"] for r in tr.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert losses == [r["train_loss"] for r in runs[1].history]
    fp32 = Trainer(make_net(), GUIDES, cfg(epochs=1, device="cpu")).fit(images, labels)
    assert not fp32.amp_ and fp32.amp_dtype_ is None


def test_discriminative_loss_trains():
    images, labels = make_data(3)
    net = make_net()
    tr = Trainer(net, GUIDES, cfg(epochs=6, steps_per_epoch=4, learning_rate=3e-3, validation_fraction=0.3,
                                  lr_schedule="constant", loss="discriminative"))
    tr.fit(images, labels)
    losses = [r["train_l1"] for r in tr.history]
    assert losses[-1] < losses[0] and all(r["val_l1"] is not None for r in tr.history)


def test_reproducible_with_seed():
    images, labels = make_data(3)
    runs = []
    for _ in range(2):
        net = make_net()
        tr = Trainer(net, GUIDES, cfg(epochs=2)).fit(images, labels)
        runs.append(([(r["train_loss"], r["val_loss"]) for r in tr.history], net.state_dict()))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k


def _strip(history):
    return [{k: v for k, v in r.items() if k not in ("dur", "interrupted")} for r in history]


class InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch
        self.seen = []

    def on_train_begin(self, trainer):
        self.seen.append("begin")

    def on_epoch_end(self, trainer, record):
        self.seen.append(record["epoch"])
        if record["epoch"] == self.epoch:
            raise KeyboardInterrupt

    def on_train_end(self, trainer):
        self.seen.append("end")


def test_checkpoint_resume_matches_uninterrupted(tmp_path):
    images, labels = make_data(3)
    full = Trainer(make_net(), GUIDES, cfg(epochs=4)).fit(images, labels)
    path = tmp_path / "ckpt.pt"
    c = cfg(epochs=4, checkpoint_path=str(path))
    Trainer(make_net(), GUIDES, c, callbacks=[InterruptAt(2)]).fit(images, labels)
    assert path.exists() and not list(tmp_path.glob("*.tmp*"))
    resumed_net = make_net(seed=123)  # different init: everything comes from the checkpoint
    resumed = Trainer(resumed_net, GUIDES, c).fit(images, labels, resume=True)
    assert _strip(resumed.history) == _strip(full.history)
    for k, v in full.module.state_dict().items():
        assert torch.equal(v, resumed_net.state_dict()[k]), k
    other = cfg(epochs=4, checkpoint_path=str(path), loss="discriminative")
    with pytest.raises(ValueError, match="loss='harmonic'"):  # never mix two objectives in one run
        Trainer(make_net(), GUIDES, other).fit(images, labels, resume=True)


def test_keyboard_interrupt_keeps_best_weights(caplog):
    images, labels = make_data(3)
    net = make_net()
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, trainer, record):
            snapshots[record["epoch"]] = {k: v.clone() for k, v in trainer.module.state_dict().items()}

    cb = InterruptAt(3)
    with caplog.at_level(logging.WARNING, logger="harmonic_seg.nn.trainer"):
        tr = Trainer(net, GUIDES, cfg(epochs=10), callbacks=[Snap(), cb]).fit(images, labels)
    assert tr.interrupted_ and tr.history[-1]["interrupted"] and len(tr.history) == 3
    assert cb.seen == ["begin", 1, 2, 3, "end"]
    assert "interrupted" in caplog.text
    best = min(tr.history, key=lambda r: r["val_loss"])["epoch"]
    assert tr.best_epoch_ == best
    for k, v in snapshots[best].items():
        assert torch.equal(v, net.state_dict()[k]), k


def test_early_stopping_and_schedules():
    images, labels = make_data(3)
    tr = Trainer(make_net(), GUIDES, cfg(epochs=20, steps_per_epoch=1, learning_rate=1e-9, patience=1,
                                         lr_schedule="plateau")).fit(images, labels)
    assert tr.stopped_early_ and len(tr.history) < 20
    tr = Trainer(make_net(), GUIDES, cfg(epochs=2, steps_per_epoch=1, lr_schedule="cosine")).fit(images, labels)
    assert tr.history[1]["lr"] < tr.history[0]["lr"]


def test_default_steps_per_epoch_and_ignore():
    images, labels = make_data(2, shape=(64, 64))
    ignore = [np.zeros((64, 64), bool), None]
    tr = Trainer(make_net(), GUIDES, cfg(epochs=1, steps_per_epoch=None, batch_size=1, validation_fraction=0))
    tr.fit(images, labels, ignore=ignore)
    assert len(tr.history) == 1 and np.isfinite(tr.history[0]["train_loss"])


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda im, lab: ([], lab), "images"),
        (lambda im, lab: (im, []), "labels"),
        (lambda im, lab: (im[:2], lab), "same length"),
        (lambda im, lab: (im, [lab[0][:-1]] + lab[1:]), r"labels\[0\]"),
        (lambda im, lab: ([np.concatenate([im[0], im[0]])] + im[1:], lab), "channel"),
        (lambda im, lab: ([np.where(im[0] > 0.5, np.nan, im[0])] + im[1:], lab), r"images\[0\].*NaN"),
        (lambda im, lab: ([im[0][0]] + im[1:], lab), r"images\[0\]"),
    ],
)
def test_fit_validates_input(mutate, match):
    images, labels = make_data(3)
    images, labels = mutate(images, labels)
    with pytest.raises(ValueError, match=match):
        Trainer(make_net(), GUIDES, cfg(epochs=1)).fit(images, labels)


def test_config_and_trainer_validation():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="validation_fraction"):
        TrainConfig(validation_fraction=1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="l2")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="boundary_weight must be a finite number >= 0"):
            TrainConfig(boundary_weight=bad)
    with pytest.raises(ValueError, match="guides"):
        Trainer(make_net(), random_guides(3, (10, 10), random_state=0), cfg())
    with pytest.raises(ValueError, match="checkpoint_path"):
        Trainer(make_net(), GUIDES, cfg()).fit(*make_data(2), resume=True)


def test_crop_sample_from_table_equals_crop_of_full_map_with_padding():
    images, labels = make_data(1, shape=(40, 30))
    ign = np.zeros((40, 30), bool)
    ign[:5] = True
    table = embedding_table(labels[0], GUIDES)
    full = embedding_map(labels[0], GUIDES)
    for corner in [(0, 0), (10, 6)]:  # the crop runs past the bottom and right edges: padded
        a = crop_sample(images[0], labels[0], ign, table, corner, (48, 48))
        b = crop_sample(images[0], labels[0], ign, full, corner, (48, 48))
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        assert np.all(a[1][:, 40 - corner[0]:, :] == 0) and a[3][:, 30 - corner[1]:].all()


def test_fit_leaves_torch_global_generator_as_it_was():
    images, labels = make_data(3)
    net = make_net()
    torch.manual_seed(99)
    before = torch.get_rng_state()
    Trainer(net, GUIDES, cfg(epochs=1)).fit(images, labels)  # used to call torch.manual_seed
    assert torch.equal(torch.get_rng_state(), before)


def test_crop_checked_against_the_network_and_clipped_to_the_images():
    images, labels = make_data(2, shape=(40, 36))
    # a crop of 4 with depth 2 leaves 1 x 1 pixel at the deepest level: BatchNorm failed in torch with batch 1
    with pytest.raises(ValueError, match=r"config.crop_size=4 is too small for depth=2.*at least 8"):
        Trainer(make_net(), GUIDES, cfg(epochs=1, crop_size=4, batch_size=1)).fit(images, labels)
    # a crop of 10**6 asked numpy for terabytes; it is clipped to the longest side of the images
    tr = Trainer(make_net(), GUIDES, cfg(epochs=1, crop_size=10**6, validation_fraction=0.5)).fit(images, labels)
    assert tr.crop_size_ == 40 and np.isfinite(tr.history[0]["val_loss"])


@pytest.mark.parametrize("device, match", [("gpu", "device must be 'auto', 'cpu', 'cuda'"),
                                            ("cuda", "device='cuda' but this torch")])
def test_device_refused_with_a_value_error(monkeypatch, device, match):
    from harmonic_seg.nn.trainer import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=match):  # was torch's RuntimeError
        resolve_device(device)
    with pytest.raises(ValueError, match=match):
        Trainer(make_net(), GUIDES, cfg(epochs=1, device=device)).fit(*make_data(2))
