"""The GPU report of the seed configuration in one call: one markdown table (and, with --json, the same as JSON) of
1. the train_ldm step, the reference implementation's way against ours, at per-GPU batch 32 and at the largest
   batch that fits, and the speed-up;
2. the model FLOPs utilisation of those steps: the UNet's training FLOPs per image (counted as seed_flops.py counts
   them) times images/s, over a bf16 matrix product timed on the same device in the same run, and over the
   datasheet's dense bf16 peak;
3. the train_aekl step at the profile's image size with the adversarial term, fp32 against bf16, and the largest
   batch that fits;
4. sampling, DDIM with guidance plus decoding, images/s at batch 16 and at the largest batch that fits.

    python benchmarks/gpu_report.py [--profile configs/mimic.yaml] [--json report.json] [--budget-s 400]
    python benchmarks/gpu_report.py --toy [--json toy.json]      # the same code paths on the CPU, under a minute

The reference's way (generative_chestxray): every step encodes the images with the autoencoder and the prompts
with the CLIP text model (SD 2.1's architecture: 23 layers of width 1024, random weights, no download), under fp16
autocast with a GradScaler, plain attention. Ours: latents and prompt embeddings cached beforehand (train_ldm with
prompt_pool > 0; the seed profile's prompt_pool 0 encodes prompts every step), bf16 autocast, MONAI's
use_flash_attention=True (torch's scaled_dot_product_attention; the legend says which of its kernels take the
UNet's 512- and 768-wide heads), plus channels-last and torch.compile, each kept only where it measures faster at
batch 32. The largest batch is found by doubling until out of memory, then backing off halfway while the last fit
and the first failure are more than a quarter apart. The search runs eager (a compile per batch size would eat
the budget), so there 'ours' is the faster eager variant. Inputs are random (shapes are what matter); train_aekl
runs without its perceptual loss (the SqueezeNet trunk is a download), as gpu_smoke.py does.

--budget-s caps the whole run, imports included. Items run the fixed batches first, then the train_ldm searches,
torch.compile (the dearest), and the train_aekl and sampling searches; an item that would not finish in the time
left is skipped with a line saying so, and a search stops doubling where the next try would not fit. The JSON is
rewritten after every item, so a run cut short keeps what it measured.

On the workplace's H200, which has PyTorch, torchvision, transformers, einops and safetensors but not MONAI, carry
MONAI's wheel. Here, once, in the repository root:

    echo /.whl/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: -d .whl monai==1.6.1

then one device call, `run` with carry [".whl"] and timeout_s 540, command `bash benchmarks/gpu_report.sh`: it
installs the wheel into /tmp/site (pip install --no-index --no-deps --target), runs this script under
`timeout 480` with --budget-s 400, and leaves $OUT/gpu_report.json and $OUT/gpu_report.log.
"""

from __future__ import annotations

import time

STARTED = time.monotonic()  # --budget-s counts the imports too

import argparse
import gc
import json
import os
import re
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers: the hub would retry for ~23 s per config
import monai
import torch
import torch.nn.functional as F
import yaml
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
import seed_flops
from gpu_smoke import autoencoder_case, sampling_case, timed

from cxrldm.models import networks
from cxrldm.models.autoencoder import AutoencoderConfig
from cxrldm.models.diffusion import DiffusionConfig, build_training, draw_step, train_step
from cxrldm.models.text import encoder_width
from cxrldm.models.training import Runtime

SCALE_FACTOR = 0.3  # the seed's typed-in value; any number times the same
# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from NVIDIA's datasheets, by torch.cuda.get_device_name.
DATASHEET_BF16_TFLOPS = (
    (r"\bH100\b.*\bPCIe\b", 756.0),
    (r"\bH100\b.*\bNVL\b", 835.0),
    (r"\bH100\b", 989.0),
    (r"\bH200\b", 989.0),
    (r"\bA100\b", 312.0),
    (r"\bL40S\b", 362.0),
    (r"\bA10\b", 125.0),
)
COMPILE_ESTIMATE_S = {"cuda": 150.0, "cpu": 20.0}  # a first torch.compile of the UNet's forward and backward
ORDER = {"bf16 matmul": 0, "train_ldm": 1, "train_ldm speed-up": 1, "train_aekl": 2, "sampling": 3}


class SdpaConfig(DiffusionConfig):
    """The profile's UNet with MONAI's use_flash_attention=True: torch's scaled_dot_product_attention."""

    def unet_kwargs(self, latent_channels: int, context_width: int) -> dict:
        return {**super().unet_kwargs(latent_channels, context_width), "use_flash_attention": True}


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.0f} s] {message}", file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def out_of_memory(error: Exception) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error) or "ALLOC_FAILED" in str(error)


class Budget:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.monotonic() - STARTED)


def measure(make_step, batch: int, steps: int, device: torch.device, recover=None, **timed_kwargs) -> dict | None:
    """timed() of make_step(batch), or None when it runs out of memory (then `recover()` mends what a step cut
    short leaves behind, such as a GradScaler between its step and its update)."""
    started = time.monotonic()
    oom = False
    try:
        seconds, peak = timed(make_step(batch), steps, device, **timed_kwargs)
    except RuntimeError as error:
        if not out_of_memory(error):
            raise
        oom = True
    release(device)  # outside the except clause, whose traceback holds the step's tensors
    if oom:
        if recover is not None:
            recover()
        log(f"  batch {batch}: out of memory")
        return None
    log(f"  batch {batch}: {seconds:.3f} s per call, peak {peak or 0:.1f} GiB")
    return {
        "batch": batch,
        "s_per_step": seconds,
        "images_per_s": batch / seconds,
        "peak_gib": peak,
        "wall_s": time.monotonic() - started,
    }


def largest_batch(try_batch, first: dict, cap: int, budget: Budget) -> tuple[dict, dict, str]:
    """Double the batch from the measured `first` until try_batch(batch) returns None (out of memory), passes
    `cap` or would outrun the budget; then back off halfway between the largest fit and the smallest failure while
    they are more than a quarter apart. Returns (the largest fit's result, {batch: result or None}, why it stopped)."""
    trials = {first["batch"]: first}
    fits, fails, last_s = first["batch"], None, first["wall_s"]
    while True:
        if fails is None:
            batch, stop = fits * 2, f"cap {cap}"
            if batch > cap:
                break
        else:
            middle = (fits + fails) // 2
            batch, stop = (middle - middle % 8 if middle >= 16 else middle), f"out of memory at {fails}"
            if fails - fits <= max(1, fits // 4) or batch <= fits:
                break
        if budget.left() < 2.5 * last_s:
            stop = "time budget"
            break
        started = time.monotonic()
        trials[batch] = try_batch(batch)
        last_s = time.monotonic() - started
        if trials[batch] is None:
            fails = batch
        else:
            fits = batch
    return trials[fits], trials, stop


def searched(trials: dict, stop: str) -> str:
    tried = ", ".join(f"{batch}{'' if result else ' OOM'}" for batch, result in sorted(trials.items()))
    return f"largest that fits; tried {tried}; stopped: {stop}"


class LdmCase:
    """One train_ldm set-up (UNet, optimiser and scaler from diffusion.build_training), built once and stepped
    at any batch size."""

    def __init__(self, params: dict, cfg: DiffusionConfig, runtime: Runtime, width: int):
        self.ae = AutoencoderConfig(**params["train_aekl"])
        self.latent = networks.latent_shape(self.ae.autoencoder_kwargs(), self.ae.image_size)
        self.cfg, self.runtime, self.width = cfg, runtime, width
        self.tokens = params["text_encoder"]["max_length"]
        self.unet, self.ema, self.optimizer, self.warmup, self.scaler = build_training(
            cfg, self.ae.latent_channels, width, runtime
        )
        self.model = self.unet
        self.scheduler = cfg.noise_schedule()

    def train(self, mu, sigma, context) -> None:
        device = self.runtime.device
        drawn = draw_step(mu, sigma, SCALE_FACTOR, self.cfg.num_train_timesteps, None)
        latents, noise, timesteps = (t.to(device) for t in drawn)
        train_step(
            self.model,
            self.ema,
            self.optimizer,
            self.warmup,
            self.scaler,
            self.scheduler,
            latents,
            noise,
            timesteps,
            context.to(device),
            self.cfg,
            self.runtime,
        )

    def recover(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler = self.runtime.grad_scaler()


class ReferenceLdm(LdmCase):
    """The reference implementation's step: the autoencoder encodes the images and the CLIP text model the
    prompts at every step, under fp16 autocast with loss scaling; MONAI's plain attention."""

    def __init__(self, params: dict, device: torch.device, width: int, text_layers: int):
        super().__init__(params, DiffusionConfig(**params["train_ldm"]), Runtime(device, "fp16"), width)
        self.autoencoder = networks.build("AutoencoderKL", self.ae.autoencoder_kwargs()).to(device).eval()
        # SD 2.1's text encoder (the OpenCLIP ViT-H text tower less its last layer: 23 layers at width 1024)
        config = CLIPTextConfig(
            hidden_size=width,
            num_hidden_layers=text_layers,
            num_attention_heads=width // 64,
            intermediate_size=4 * width,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act="gelu",
            attn_implementation="eager",
        )
        self.text_encoder = CLIPTextModel(config).to(device).eval()

    def step_for(self, batch: int):
        device, size = self.runtime.device, self.ae.image_size
        images = torch.rand(batch, 1, size, size, device=device)
        tokens = torch.randint(0, self.text_encoder.config.vocab_size, (batch, self.tokens), device=device)

        def step():
            with torch.no_grad(), self.runtime.autocast():
                mu, sigma = self.autoencoder.encode(images)
                context = self.text_encoder(tokens).last_hidden_state
            self.train(mu.float(), sigma.float(), context.float())

        return step


class OursLdm(LdmCase):
    """Our step: cached latent distributions and prompt embeddings (on the CPU, where the caches are), bf16
    autocast, scaled-dot-product attention, optionally channels-last and torch.compile."""

    def __init__(
        self,
        params: dict,
        device: torch.device,
        width: int,
        channels_last: bool = False,
        compile_backend: str | None = None,
    ):
        super().__init__(params, SdpaConfig(**params["train_ldm"]), Runtime(device, "bf16"), width)
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        if compile_backend:
            self.model = torch.compile(self.unet, backend=compile_backend)

    def step_for(self, batch: int):
        mu, sigma = torch.randn(batch, *self.latent), torch.rand(batch, *self.latent) * 0.1
        context = torch.randn(batch, self.tokens, self.width)
        return lambda: self.train(mu, sigma, context)


def matmul_tflops(device: torch.device, n: int, reps: int) -> float:
    """The rate of an n x n x n bf16 matrix product on random data, after warm-up."""
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    synchronize(device)
    return 2 * n**3 * reps / (time.perf_counter() - started) / 1e12


def datasheet_tflops(device_name: str) -> float | None:
    return next((peak for pattern, peak in DATASHEET_BF16_TFLOPS if re.search(pattern, device_name)), None)


def sdpa_kernels(unet_kwargs: dict, device: torch.device) -> list[str]:
    """The scaled-dot-product-attention kernels that run the UNet's attention head widths in bf16, forward and
    backward (FlashAttention takes heads up to 256 wide; the seed's are 512 and 768)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    widths = sorted({h for h, on in zip(unet_kwargs["num_head_channels"], unet_kwargs["attention_levels"]) if on})
    accepted = []
    for backend in (
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
        SDPBackend.MATH,
    ):
        try:
            with warnings.catch_warnings(), sdpa_kernel(backend):
                warnings.simplefilter("ignore")  # a refusal warns as well as raising
                for width in widths:
                    q = torch.randn(1, 1, 64, width, device=device, dtype=torch.bfloat16, requires_grad=True)
                    F.scaled_dot_product_attention(q, q, q).sum().backward()
            accepted.append(backend.name.lower())
        except RuntimeError:
            pass
    return accepted


def unet_parameters(params: dict, width: int) -> int:
    cfg, ae = DiffusionConfig(**params["train_ldm"]), AutoencoderConfig(**params["train_aekl"])
    with torch.device("meta"):
        return networks.n_params(networks.build("DiffusionModelUNet", cfg.unet_kwargs(ae.latent_channels, width)))


def number(value, spec: str) -> str:
    if value is None:
        return "-"
    return format(value * 100, spec[:-1] + "f") if spec.endswith("%") else format(value, spec)


class Report:
    """The table's rows, the summary, what was skipped or failed; the JSON is rewritten at every change."""

    COLUMNS = (
        "item",
        "configuration",
        "batch",
        "s/step",
        "images/s",
        "TFLOP/s",
        "% of matmul",
        "% of datasheet",
        "peak GiB",
        "note",
    )

    def __init__(self, meta: dict, json_path: str | None):
        self.meta, self.json_path = meta, json_path
        self.rows, self.summary, self.skipped, self.failed = [], {}, [], []

    def add(self, item: str, configuration: str, result: dict | None = None, largest: bool = False, **fields) -> dict:
        row = {"item": item, "configuration": configuration, "largest": largest, **(result or {}), **fields}
        row.pop("wall_s", None)
        self.rows.append(row)
        self.rows.sort(key=lambda r: (ORDER[r["item"]], r["largest"]))  # stable: measured order within
        self.save()
        return row

    def skip(self, name: str, seconds_left: float) -> None:
        log(f"skipped {name}: {max(0.0, seconds_left):.0f} s of the budget left")
        self.skipped.append(name)
        self.save()

    def fail(self, name: str, error: Exception) -> None:
        log(f"FAILED {name}: {type(error).__name__}: {error}")
        self.failed.append({"item": name, "error": f"{type(error).__name__}: {error}"})
        self.save()

    def save(self) -> None:
        if self.json_path:
            document = {
                **self.meta,
                "elapsed_s": time.monotonic() - STARTED,
                "summary": self.summary,
                "rows": self.rows,
                "skipped": self.skipped,
                "failed": self.failed,
            }
            Path(self.json_path).write_text(json.dumps(document, indent=2) + "\n")

    def table(self) -> str:
        def cells(row):
            speedup = row.get("speedup")
            return (
                row["item"],
                row["configuration"],
                number(row.get("batch"), "d"),
                number(row.get("s_per_step"), ".4f"),
                f"{speedup:.2f}x" if speedup is not None else number(row.get("images_per_s"), ".1f"),
                number(row.get("tflops"), ".4g"),
                number(row.get("of_matmul"), ".1%"),
                number(row.get("of_datasheet"), ".1%"),
                number(row.get("peak_gib"), ".1f"),
                row.get("note", ""),
            )

        lines = ["| " + " | ".join(self.COLUMNS) + " |", "|---|---|" + "---:|" * 7 + "---|"]
        return "\n".join(lines + ["| " + " | ".join(cells(row)) + " |" for row in self.rows])


class GpuReport:
    """The items of the report, each run through attempt(): within the budget, failures recorded."""

    def __init__(self, args, params: dict):
        self.args, self.params = args, params
        self.device = torch.device(args.device)
        self.width = encoder_width(params["text_encoder"]["model"], params["text_encoder"]["encoder_subfolder"])
        self.device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        self.datasheet = datasheet_tflops(self.device_name)
        self.image_size = params["train_aekl"]["image_size"]
        self.budget = Budget(args.budget_s)
        self.report = Report(
            {
                "device": self.device_name,
                "torch": torch.__version__,
                "monai": monai.__version__,
                "profile": Path(args.profile).name,
                "toy": args.toy,
                "budget_s": args.budget_s,
                "unet_parameters": unet_parameters(params, self.width),
                "datasheet_bf16_tflops": self.datasheet,
                "settings": {k: v for k, v in vars(args).items() if k not in ("json", "profile")},
            },
            args.json,
        )
        self.summary = self.report.summary
        self.matmul = self.flops = self.reference = self.eager = self.sampled = None
        self.aekl = {}
        self.reference_label = (
            f"reference: encode {self.image_size} px + CLIP every step, fp16 + GradScaler, plain attention"
        )

    def attempt(self, name: str, estimate_s: float, work):
        """work() unless the budget has less than `estimate_s` left. A failure is recorded and the run goes on:
        a device run is one shot, and one broken item must not lose the others."""
        if self.budget.left() < estimate_s:
            self.report.skip(name, self.budget.left())
            return None
        log(name)
        try:
            return work()
        except Exception as error:
            self.report.fail(name, error)
            return None
        finally:
            release(self.device)

    def measure(self, make_step, batch: int, steps: int | None = None, recover=None, **timed_kwargs):
        return measure(
            make_step, batch, self.args.steps if steps is None else steps, self.device, recover, **timed_kwargs
        )

    def largest(self, try_batch, first: dict):
        return largest_batch(try_batch, first, self.args.max_batch, self.budget)

    def peaks(self) -> None:
        """The bf16 matrix-product rate and the UNet's FLOPs per training image, which the utilisation columns
        use, and the attention kernels that take the UNet's heads."""
        reps = 50 if self.device.type == "cuda" else 3
        self.matmul = self.attempt("bf16 matmul", 10, lambda: matmul_tflops(self.device, self.args.matmul_size, reps))
        if self.matmul is not None:
            self.summary["matmul_bf16_tflops"] = self.matmul
            self.report.add(
                "bf16 matmul",
                f"{self.args.matmul_size}^3, random data",
                tflops=self.matmul,
                of_matmul=1.0,
                of_datasheet=self.matmul / self.datasheet if self.datasheet else None,
            )
        self.flops = self.attempt("UNet FLOPs per training image", 60, lambda: seed_flops.unet_flops(self.params))
        self.summary["unet_train_gflop_per_image"] = self.flops / 1e9 if self.flops else None
        latent_channels = self.params["train_aekl"]["latent_channels"]
        unet_kwargs = SdpaConfig(**self.params["train_ldm"]).unet_kwargs(latent_channels, self.width)
        self.summary["sdpa_kernels"] = self.attempt("SDPA kernels", 0, lambda: sdpa_kernels(unet_kwargs, self.device))

    def ldm_row(self, configuration: str, result: dict, **fields) -> dict:
        tflops = self.flops * result["images_per_s"] / 1e12 if self.flops else None
        return self.report.add(
            "train_ldm",
            configuration,
            result,
            tflops=tflops,
            of_matmul=tflops / self.matmul if tflops and self.matmul else None,
            of_datasheet=tflops / self.datasheet if tflops and self.datasheet else None,
            **fields,
        )

    def reference_case(self) -> ReferenceLdm:
        return ReferenceLdm(self.params, self.device, self.width, text_layers=1 if self.args.toy else 23)

    def ours_case(self, channels_last: bool, compile_backend: str | None = None) -> OursLdm:
        return OursLdm(self.params, self.device, self.width, channels_last, compile_backend)

    def train_ldm(self) -> None:
        """The reference's way and our eager variants at the per-GPU batch."""
        batch = self.args.ldm_batch

        def run(case):
            return self.measure(case.step_for, batch, recover=case.recover)

        self.reference = self.attempt(f"train_ldm reference, batch {batch}", 30, lambda: run(self.reference_case()))
        if self.reference:
            self.ldm_row(self.reference_label, self.reference)
        for channels_last in (False, True):
            label = "ours: cached latents + contexts, bf16, SDPA" + (" + channels-last" if channels_last else "")
            result = self.attempt(f"train_ldm {label}, batch {batch}", 20, lambda: run(self.ours_case(channels_last)))
            if result:
                row = self.ldm_row(label, result)
                if self.eager is None or result["images_per_s"] > self.eager["result"]["images_per_s"]:
                    self.eager = {"label": label, "result": result, "row": row, "channels_last": channels_last}

    def train_ldm_largest(self) -> None:
        """Ours (the faster eager variant: a compile for every batch size tried would eat the budget) and the
        reference's way, each at its largest batch."""

        def search(case, first):
            return self.largest(lambda b: self.measure(case.step_for, b, recover=case.recover), first)

        largest = {}
        if self.eager:
            first = self.eager["result"]
            found = self.attempt(
                "train_ldm ours, largest batch",
                2.5 * first["wall_s"],
                lambda: search(self.ours_case(self.eager["channels_last"]), first),
            )
            if found:
                largest["ours"] = found[0]
                self.ldm_row(self.eager["label"], found[0], largest=True, note=searched(*found[1:]))
        if self.reference:
            found = self.attempt(
                "train_ldm reference, largest batch",
                2.5 * self.reference["wall_s"],
                lambda: search(self.reference_case(), self.reference),
            )
            if found:
                largest["reference"] = found[0]
                self.ldm_row(self.reference_label, found[0], largest=True, note=searched(*found[1:]))
        if len(largest) == 2:
            self.summary["train_ldm_largest_batch"] = {way: result["batch"] for way, result in largest.items()}
            speedup = largest["ours"]["images_per_s"] / largest["reference"]["images_per_s"]
            self.summary["train_ldm_speedup_largest"] = speedup
            self.report.add(
                "train_ldm speed-up",
                "ours / reference, each at its largest batch",
                largest=True,
                speedup=speedup,
                note=f"batches {largest['ours']['batch']} and {largest['reference']['batch']}",
            )

    def train_ldm_compiled(self) -> None:
        """torch.compile on the faster eager variant at the per-GPU batch; then the pick, and its speed-up."""
        if not self.eager:
            return
        batch, ours = self.args.ldm_batch, self.eager

        def compiled_run():
            case = self.ours_case(ours["channels_last"], self.args.compile_backend)
            step = case.step_for(batch)
            started = time.monotonic()
            step()
            synchronize(self.device)
            compile_s = time.monotonic() - started
            result = self.measure(lambda _: step, batch, recover=case.recover)
            return result and {**result, "compile_s": compile_s}

        compiled = self.attempt(
            f"train_ldm {ours['label']} + torch.compile, batch {batch}",
            COMPILE_ESTIMATE_S.get(self.device.type, 150.0),
            compiled_run,
        )
        torch.compiler.reset()
        if compiled:
            label = f"{ours['label']} + torch.compile ({self.args.compile_backend})"
            row = self.ldm_row(label, compiled, note=f"first step {compiled['compile_s']:.0f} s (compiling)")
            if compiled["images_per_s"] > ours["result"]["images_per_s"]:
                ours = {"label": label, "result": compiled, "row": row}
        ours["row"]["note"] = "; ".join(filter(None, [ours["row"].get("note"), "picked"]))
        self.summary["train_ldm_picked"] = ours["label"]
        if self.reference:
            speedup = ours["result"]["images_per_s"] / self.reference["images_per_s"]
            self.summary["train_ldm_speedup"] = speedup
            self.report.add("train_ldm speed-up", f"{ours['label']} / reference", batch=batch, speedup=speedup)

    def aekl_label(self, precision: str) -> str:
        tf32 = precision == "fp32" and self.device.type == "cuda" and torch.backends.cudnn.allow_tf32
        return f"{precision}{' (TF32 convolutions)' if tf32 else ''}, {self.image_size} px, adversarial term on"

    def train_aekl(self) -> None:
        batch = self.args.ae_batch
        for precision in ("fp32", "bf16"):
            runtime = Runtime(self.device, precision)
            make = lambda b, runtime=runtime: autoencoder_case(self.params, runtime, b)
            result = self.attempt(f"train_aekl {precision}, batch {batch}", 20, lambda: self.measure(make, batch))
            if result:
                self.aekl[precision] = (make, result)
                self.report.add("train_aekl", self.aekl_label(precision), result)

    def train_aekl_largest(self) -> None:
        self.summary["train_aekl_largest_batch"] = {}
        for precision in ("bf16", "fp32"):
            if precision not in self.aekl:
                continue
            make, first = self.aekl[precision]
            found = self.attempt(
                f"train_aekl {precision}, largest batch",
                2.5 * first["wall_s"],
                lambda: self.largest(lambda b: self.measure(make, b), first),
            )
            if found:
                self.summary["train_aekl_largest_batch"][precision] = found[0]["batch"]
                self.report.add(
                    "train_aekl", self.aekl_label(precision), found[0], largest=True, note=searched(*found[1:])
                )

    def sampler(self, batch: int):
        return sampling_case(
            self.params,
            Runtime(self.device, "bf16"),
            batch,
            self.width,
            self.args.sample_steps,
            SdpaConfig(**self.params["train_ldm"]),
        )

    def full_run(self, batch: int):
        """All the DDIM steps once, after a one-step warm-up."""
        step = self.sampler(batch)
        return self.measure(lambda _: step, batch, 1, warmup=lambda: step(1))

    def sampling_label(self) -> str:
        return (
            f"DDIM {self.args.sample_steps} steps, guidance {self.params['sample']['guidance_scale']:g}, "
            f"decode to {self.image_size} px; bf16, SDPA"
        )

    def sampling(self) -> None:
        batch = self.args.sample_batch
        self.sampled = self.attempt(f"sampling, batch {batch}", 30, lambda: self.full_run(batch))
        if self.sampled:
            self.report.add("sampling", self.sampling_label(), self.sampled)

    def sampling_largest(self) -> None:
        """Fit tests run one DDIM step (the same peak memory: the guided UNet batch, then the decoder); the largest
        batch that fits then runs all the steps once."""
        if not self.sampled:
            return

        def probe(batch):
            step = self.sampler(batch)
            result = self.measure(lambda _: lambda: step(1), batch, 1, warmup=lambda: None)
            return result and {**result, "s_per_step": None, "images_per_s": None}

        found = self.attempt(
            "sampling, largest batch (one-step fit tests)",
            2.5 * self.sampled["wall_s"],
            lambda: self.largest(probe, self.sampled),
        )
        if not found:
            return
        fit, trials, stop = found
        self.summary["sampling_largest_batch"] = fit["batch"]
        if fit["images_per_s"] is None:
            estimate = 1.5 * self.sampled["s_per_step"] * fit["batch"] / self.args.sample_batch
            fit = self.attempt(f"sampling, batch {fit['batch']}", estimate, lambda: self.full_run(fit["batch"])) or fit
        note = searched(trials, stop) + ("" if fit["images_per_s"] else "; not timed (time budget)")
        self.report.add("sampling", self.sampling_label(), fit, largest=True, note=note)

    def show(self) -> None:
        args, flops = self.args, self.flops
        print(
            f"{self.device_name}, torch {torch.__version__}, MONAI {monai.__version__}, profile "
            f"{Path(args.profile).name}, {self.report.meta['unet_parameters'] / 1e6:.1f} M-parameter UNet; "
            f"{time.monotonic() - STARTED:.0f} s of --budget-s {args.budget_s:g}\n"
        )
        print(self.report.table() + "\n")
        peak = (
            f"the {self.device_name}'s dense bf16 peak, {self.datasheet:g} TFLOP/s"
            if self.datasheet
            else "a datasheet peak (unknown for this device)"
        )
        print(
            f"TFLOP/s (train_ldm): the UNet's training FLOPs per image ("
            f"{f'{flops / 1e9:.1f} GFLOP' if flops else 'not counted'}, forward and backward, counted as "
            "seed_flops.py counts them) times images/s; the reference's autoencoder and text encoder work is not "
            f"counted. % of matmul: of the bf16 matrix product above; % of datasheet: of {peak}."
        )
        kernels = self.summary.get("sdpa_kernels")
        print(
            f"SDPA kernels that run this UNet's attention heads in bf16: "
            f"{', '.join(kernels) if kernels else 'not checked'}. Peak GiB: "
            f"{'allocated on the GPU' if self.device.type == 'cuda' else 'the process resident set'}, "
            "model and optimiser state included."
        )
        if self.report.skipped:
            print(f"Skipped for the time budget (--budget-s {args.budget_s:g}): {'; '.join(self.report.skipped)}.")
        for failure in self.report.failed:
            print(f"FAILED {failure['item']}: {failure['error']}")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="default: configs/mimic.yaml (with --toy: configs/tiny.yaml)")
    parser.add_argument("--json", help="also write the report here as JSON")
    parser.add_argument("--budget-s", type=float, default=400.0, help="the whole run's time cap in seconds")
    parser.add_argument(
        "--toy",
        action="store_true",
        help="the same code paths on the CPU at tiny sizes (tiny profile, batch 2, one step)",
    )
    parser.add_argument("--device", help="default: cuda where available (with --toy: cpu)")
    parser.add_argument("--ldm-batch", type=int, help="per-GPU train_ldm batch (default 32; toy 2)")
    parser.add_argument("--ae-batch", type=int, help="train_aekl batch for fp32 against bf16 (default 8; toy 2)")
    parser.add_argument("--sample-batch", type=int, help="sampling batch (default 16; toy 2)")
    parser.add_argument(
        "--sample-steps",
        type=int,
        help="DDIM steps (default: the profile's train_ldm.sample_steps, the bundle's 50; toy 2)",
    )
    parser.add_argument("--steps", type=int, help="timed training steps after a warm-up step (default 3; toy 1)")
    parser.add_argument("--max-batch", type=int, help="the largest batch a search tries (default 4096; toy 4)")
    parser.add_argument("--matmul-size", type=int, help="n of the n x n x n bf16 product (default 8192; toy 256)")
    parser.add_argument(
        "--compile-backend",
        help="torch.compile backend (default inductor; toy eager, which traces the same way without generating code)",
    )
    args = parser.parse_args()
    toy = args.toy
    defaults = {
        "profile": str(ROOT / "configs" / ("tiny.yaml" if toy else "mimic.yaml")),
        "device": "cpu" if toy or not torch.cuda.is_available() else "cuda",
        "ldm_batch": 2 if toy else 32,
        "ae_batch": 2 if toy else 8,
        "sample_batch": 2 if toy else 16,
        "sample_steps": 2 if toy else None,
        "steps": 1 if toy else 3,
        "max_batch": 4 if toy else 4096,
        "matmul_size": 256 if toy else 8192,
        "compile_backend": "eager" if toy else "inductor",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main():
    args = parse_args()
    params = yaml.safe_load(Path(args.profile).read_text())
    args.sample_steps = args.sample_steps or int(params["train_ldm"]["sample_steps"])
    torch.manual_seed(0)
    if args.toy:
        torch.set_num_threads(1)  # tiny tensors gain nothing from threads, which spin on shared CPUs
    run = GpuReport(args, params)
    # the fixed batches first, then the searches for the largest; torch.compile, the dearest, among the last
    for item in (
        run.peaks,
        run.train_ldm,
        run.train_aekl,
        run.sampling,
        run.train_ldm_largest,
        run.train_ldm_compiled,
        run.train_aekl_largest,
        run.sampling_largest,
    ):
        item()
    run.show()
    run.report.save()
    sys.exit(1 if run.report.failed else 0)


if __name__ == "__main__":
    main()
