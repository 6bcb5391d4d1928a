"""The autoencoder's losses, training loop, resume and checkpoint compatibility, on tiny models."""

import dataclasses
import warnings

import pytest
import torch
from torch.utils.data import Dataset

from cxrldm.models import autoencoder as ae
from cxrldm.models.training import NonFiniteLoss, setup_runtime

TINY = ae.AutoencoderConfig(
    seed=0,
    image_size=48,
    channels=[8, 8],
    latent_channels=2,
    num_res_blocks=1,
    norm_num_groups=4,
    disc_channels=8,
    disc_layers=2,
    disc_norm="batch",
    perceptual_network="squeeze",
    perceptual_weight=0.0,
    kl_weight=1e-3,
    spectral_weight=0.0,
    adv_weight=0.1,
    adv_start_epoch=2,
    lr_g=1e-3,
    lr_d=1e-3,
    grad_clip=1.0,
    batch_size=4,
    epochs=3,
    augment_p=0.5,
    augment_degrees=5.0,
    augment_translate_px=1.0,
    augment_scale=0.01,
    augment_flip_p=0.5,
    augment_shift_p=0.5,
    augment_shift=0.05,
    augment_gamma_p=0.5,
    augment_gamma=0.05,
    precision="fp32",
    val_every=1,
    val_images=4,
    ms_ssim_kernel=3,
    in_memory=True,
    num_workers=0,
)


class Blobs(Dataset):
    """Smooth random images; after `poison_after` items every image is NaN."""

    def __init__(self, n=8, size=48, poison_after=None):
        g = torch.Generator().manual_seed(1)
        self.images = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size + 3, size + 3, generator=g), 4, 1)
        self.poison_after, self.served = poison_after, 0

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.served += 1
        if self.poison_after is not None and self.served > self.poison_after:
            return torch.full_like(self.images[i], float("nan"))
        return self.images[i]


def train(tmp_path, cfg=TINY, data=None, on_epoch=lambda *a: None, name="ckpt.pt"):
    data = data or Blobs()
    return ae.train_autoencoder(
        cfg, data, Blobs().images[:4], setup_runtime(cfg.precision, "cpu"), tmp_path / name, "fp", on_epoch
    )


def test_kl_matches_hand_computation():
    mu = torch.tensor([[[[0.5, -1.0]]], [[[0.0, 2.0]]]])  # batch 2, C=1, H=1, W=2
    sigma = torch.tensor([[[[1.0, 0.5]]], [[[2.0, 1.0]]]])
    import math

    def term(m, s):
        return 0.5 * (m * m + s * s - math.log(s * s) - 1)

    expected = ((term(0.5, 1.0) + term(-1.0, 0.5)) + (term(0.0, 2.0) + term(2.0, 1.0))) / 2
    assert ae.kl_loss(mu, sigma).item() == pytest.approx(expected, rel=1e-6)


def test_generator_loss_is_the_weighted_sum():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    mu, sigma = torch.randn(2, 3, 2, 2, generator=g), torch.rand(2, 3, 2, 2, generator=g) + 0.5
    logits = torch.randn(2, 1, 3, 3, generator=g)
    cfg = dataclasses.replace(TINY, kl_weight=0.01, adv_weight=0.5)
    total, parts = ae.generator_loss(x, y, mu, sigma, cfg, None, logits)
    l1 = (x - y).abs().mean()
    adversarial = ((logits - 1) ** 2).mean()  # plain least squares, target "real", as the seed (no LeakyReLU)
    assert parts["l1"].item() == pytest.approx(l1.item())
    assert parts["adversarial"].item() == pytest.approx(adversarial.item(), rel=1e-6)
    assert total.item() == pytest.approx((l1 + 0.01 * ae.kl_loss(mu, sigma) + 0.5 * adversarial).item(), rel=1e-6)
    total, parts = ae.generator_loss(x, y, mu, sigma, cfg, None, None)
    assert "adversarial" not in parts
    d = ae.discriminator_loss(logits, -logits)
    assert d.item() == pytest.approx(0.5 * ((logits**2).mean() + ((-logits - 1) ** 2).mean()).item(), rel=1e-6)


def test_adversarial_term_starts_after_its_epochs(tmp_path):
    seen = {}  # adv_start_epoch 2: epochs 1 and 2 without, 3 with (the seed's
    train(tmp_path, on_epoch=lambda epoch, metrics, grid: seen.update({epoch: set(metrics)}))  # 0-based >= 2)
    for epoch in (1, 2):
        assert "train_adversarial" not in seen[epoch] and "train_discriminator" not in seen[epoch]
    assert {"train_adversarial", "train_discriminator"} <= seen[3]
    assert {"val_l1", "val_ms_ssim", "train_l1", "train_kl"} <= seen[3]


def test_discriminator_sees_fakes_and_reals_in_separate_calls_and_a_weighted_loss():
    torch.manual_seed(0)
    cfg, runtime = dataclasses.replace(TINY, adv_weight=0.25, grad_clip=0.0), setup_runtime("fp32", "cpu")
    autoencoder, pair, _, opt_g, opt_d, scaler = ae.build_training(cfg, runtime)
    model, images, eps = ae.SampledAutoencoder(autoencoder), Blobs().images[:4], torch.zeros(4, 2, 24, 24)
    with torch.no_grad():
        reconstruction, _, _ = model(images, eps)  # what the discriminator step will see
    pair.zero_grad()
    (0.25 * ae.discriminator_loss(*pair(reconstruction, images))).backward()
    expected = [p.grad.clone() for p in pair.parameters()]
    calls, taken = [], []
    pair.discriminator.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    opt_d.step = lambda: taken.extend(p.grad.clone() for p in pair.parameters())  # record instead of stepping
    ae.train_step(images, eps, model, pair, None, opt_g, opt_d, scaler, cfg, runtime, adversarial=True)
    assert calls == [4, 4, 4]  # the generator's term on fakes; then fakes and reals apart
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(taken, expected))  # 0.25 x the plain loss


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    whole, _ = train(tmp_path, name="whole.pt")

    def stop_after_first(epoch, metrics, grid):  # killed while logging epoch 2: the checkpoint holds epoch 1
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tmp_path, on_epoch=stop_after_first, name="resumed.pt")
    epochs = []
    resumed, _ = train(tmp_path, on_epoch=lambda epoch, *a: epochs.append(epoch), name="resumed.pt")
    assert epochs == [2, 3]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_inside_the_adversarial_phase_gives_identical_weights(tmp_path):
    """Stopped after epoch 2 with the adversarial term on since epoch 2: the discriminator, both optimisers
    and the scaler must come back, or the resumed epochs differ."""
    cfg = dataclasses.replace(TINY, adv_start_epoch=1)
    train(tmp_path, cfg=cfg, name="whole.pt")

    def stop_after_second(epoch, metrics, grid):  # killed while logging epoch 3: the checkpoint holds epoch 2
        if epoch == 3:
            assert "train_discriminator" in metrics
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tmp_path, cfg=cfg, on_epoch=stop_after_second, name="resumed.pt")
    epochs = []
    train(tmp_path, cfg=cfg, on_epoch=lambda epoch, *a: epochs.append(epoch), name="resumed.pt")
    assert epochs == [3]
    whole, resumed = (torch.load(tmp_path / n, weights_only=True)["modules"] for n in ("whole.pt", "resumed.pt"))
    assert set(whole) == {"autoencoder", "discriminator", "opt_g", "opt_d", "scaler"}
    for name in ("autoencoder", "discriminator"):
        for key, value in whole[name].items():
            assert torch.equal(value, resumed[name][key]), (name, key)


def test_reconstructions_decode_the_latent_mean():
    """Deterministic reconstructions: decode(mu), never a sampled latent."""
    from cxrldm.models import networks

    torch.manual_seed(0)
    autoencoder = networks.build("AutoencoderKL", networks.autoencoder_kwargs([8, 8], 2, 1, norm_num_groups=4)).eval()
    images, runtime = Blobs().images[:2], setup_runtime("fp32", "cpu")
    with torch.no_grad():
        mu, sigma = autoencoder.encode(images)
        expected = autoencoder.decode(mu).clamp(0, 1)
        assert (sigma > 0.1).all()  # sampling would visibly change the output
    assert torch.equal(ae.reconstruct(autoencoder, images, runtime), expected)


def test_resume_keeps_the_loss_scaler_state(tmp_path, monkeypatch):
    # The reference lost the mixed-precision scaler on resume. A CPU scaler that doubles its scale every
    # step (fp32 arithmetic, so no step overflows) makes a lost state visible in the final scale.
    from cxrldm.models.training import Runtime

    monkeypatch.setattr(
        Runtime, "grad_scaler", lambda self: torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1)
    )
    train(tmp_path, name="whole.pt")

    def stop_after_first(epoch, metrics, grid):  # the checkpoint holds epoch 1
        if epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(tmp_path, on_epoch=stop_after_first, name="resumed.pt")
    train(tmp_path, name="resumed.pt")
    whole, resumed = (
        torch.load(tmp_path / n, weights_only=True)["modules"]["scaler"] for n in ("whole.pt", "resumed.pt")
    )
    steps = TINY.epochs * len(Blobs()) // TINY.batch_size
    assert whole["scale"] == 2.0 ** (4 + steps) and resumed == whole


def test_a_different_fingerprint_starts_fresh(tmp_path):
    train(tmp_path)
    epochs = []
    cfg = TINY
    ae.train_autoencoder(
        cfg,
        Blobs(),
        Blobs().images[:4],
        setup_runtime("fp32", "cpu"),
        tmp_path / "ckpt.pt",
        "another",
        lambda epoch, *a: epochs.append(epoch),
    )
    assert epochs == [1, 2, 3]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = Blobs(poison_after=8)  # epoch 1 is clean, epoch 2 sees NaN images
    with pytest.raises(NonFiniteLoss, match="epoch 2 step 0"):
        train(tmp_path, data=data)
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["modules"]["autoencoder"].values())


def test_bf16_autocast_trains_on_cpu(tmp_path):
    _, metrics = train(tmp_path, cfg=dataclasses.replace(TINY, precision="bf16", epochs=1))
    assert metrics["train_loss"] == metrics["train_loss"] and 0 <= metrics["val_ms_ssim"] <= 1


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        setup_runtime("fp16", "cpu")


def test_missing_perceptual_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"squeezenet1_1-b8a52dc0.pth.*perceptual_weight: 0"):
        ae.perceptual_loss("squeeze")


def test_perceptual_trunk_loads_from_torch_home(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    trunk = torchvision.models.squeezenet1_1(weights=None)
    (tmp_path / "hub/checkpoints").mkdir(parents=True)
    torch.save(trunk.state_dict(), tmp_path / "hub/checkpoints" / ae.SQUEEZENET_FILE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = ae.perceptual_loss("squeeze")
    first_conv = next(m for m in loss.modules() if isinstance(m, torch.nn.Conv2d))
    assert torch.equal(first_conv.weight, trunk.features[0].weight)
    x = torch.rand(2, 1, 32, 32)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6) and loss(x, 1 - x).item() > 0


def test_monai_generative_checkpoint_loads_with_the_same_output():
    from generative.networks.nets import AutoencoderKL as OldAutoencoderKL

    from cxrldm.models import networks

    kwargs = networks.autoencoder_kwargs([64, 128, 128, 128], 3, 2)  # the seed's architecture
    old_kwargs = {("num_channels" if k == "channels" else k): v for k, v in kwargs.items()}
    torch.manual_seed(0)
    old = OldAutoencoderKL(**old_kwargs).eval()
    ours = networks.build("AutoencoderKL", kwargs).eval()
    ours.load_old_state_dict(old.state_dict())
    assert networks.n_params(ours) == 4_607_848
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(old.reconstruct(x), ours.reconstruct(x), atol=1e-5)
        assert torch.allclose(old.encode(x)[0], ours.encode(x)[0], atol=1e-5)


def test_photometric_augmentation_flips_shifts_and_bends_contrast_as_drawn():
    from cxrldm.data.augmentation import photometric, photometric_params

    images = torch.linspace(0, 1, 2 * 4 * 4).reshape(2, 1, 4, 4)
    flips, shifts, gammas = torch.tensor([True, False]), torch.tensor([0.05, -0.05]), torch.tensor([1.05, 0.95])
    out = photometric(images, flips, shifts, gammas)
    expected = torch.stack([(images[0].flip(-1) + 0.05).clamp(0, 1) ** 1.05, (images[1] - 0.05).clamp(0, 1) ** 0.95])
    assert torch.allclose(out, expected) and out.min() >= 0 and out.max() <= 1
    # probabilities 1 and 0: everything on or nothing; the draws do not depend on them (same stream after)
    on = photometric_params(64, 1.0, 1.0, 0.05, 1.0, 0.05, torch.Generator().manual_seed(0))
    off = photometric_params(64, 0.0, 0.0, 0.05, 0.0, 0.05, torch.Generator().manual_seed(0))
    assert on[0].all() and (on[1].abs() <= 0.05).all() and (on[1] != 0).all() and ((on[2] - 1).abs() <= 0.05).all()
    assert not off[0].any() and (off[1] == 0).all() and (off[2] == 1).all()
    half = photometric_params(4000, 0.5, 0.1, 0.05, 0.1, 0.05, torch.Generator().manual_seed(1))
    assert abs(half[0].double().mean() - 0.5) < 0.03 and abs((half[1] != 0).double().mean() - 0.1) < 0.02


def test_the_spectral_term_is_the_squared_difference_of_fft_amplitudes_and_ignores_a_shift():
    """train_aekl.spectral_weight adds MONAI's JukeboxLoss: mean over frequencies of (|F(x)| - |F(y)|)^2
    with the orthonormal FFT (checked against numpy). It sees blur (lost high-frequency amplitude) but not a
    circular shift (same amplitudes), so it only ever adds to L1, never replaces it."""
    import numpy as np

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    mu, sigma = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    cfg = dataclasses.replace(TINY, kl_weight=0.0, spectral_weight=2.0)
    total, parts = ae.generator_loss(x, y, mu, sigma, cfg, None, None)
    amplitude = lambda a: np.abs(np.fft.fft2(a.numpy(), norm="ortho"))
    expected = ((amplitude(x) - amplitude(y)) ** 2).mean()
    assert parts["spectral"].item() == pytest.approx(expected, rel=1e-5)
    assert total.item() == pytest.approx(parts["l1"].item() + 2.0 * expected, rel=1e-5)
    _, shifted = ae.generator_loss(x, x.roll(3, dims=-1), mu, sigma, cfg, None, None)
    assert shifted["spectral"].item() == pytest.approx(0.0, abs=1e-6) and shifted["l1"].item() > 0.1
    _, off = ae.generator_loss(x, y, mu, sigma, dataclasses.replace(cfg, spectral_weight=0.0), None, None)
    assert "spectral" not in off
