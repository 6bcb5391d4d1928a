"""The `cxrldm` command (also `python -m cxrldm`): every tool of the project as a subcommand.

Each subcommand is a module's `main(argv)`, imported only when it runs, so `cxrldm --help` answers at once
and `cxrldm generate` loads PyTorch but not the web app."""

from __future__ import annotations

import difflib
import importlib
import sys
from importlib import metadata

# name: (module whose main(argv) runs it, one line for --help)
COMMANDS = {
    "check": ("cxrldm.params", "check a params file before `dvc repro`: every key known, every value allowed"),
    "generate": ("cxrldm.cli.generate", "images from report text with trained models, without DVC"),
    "edit": ("cxrldm.cli.edit", "edit a radiograph (PNG, JPEG or DICOM) towards a report text"),
    "dicom-manifest": ("cxrldm.cli.dicom_manifest", "a manifest from a folder of DICOM files, for `dvc repro`"),
    "summary": ("cxrldm.cli.summary", "parameter counts and latent shape of a params profile"),
    "import-bundle": ("cxrldm.cli.import_bundle", "published weights in monai-generative's format as models/"),
    "app": ("cxrldm.app.__main__", "serve the browser app: generate, edit, blinded reader study"),
    "study": ("cxrldm.app.study", "draw, list or export a blinded reader study"),
    "experiments": ("cxrldm.report.experiments", "one page for sweeps and seed replicates (dvc exp show)"),
    "sweep": ("cxrldm.report.sweep", "the experiments page as metrics/guidance_sweep.html"),
    "offline-plots": ("cxrldm.report.offline_plots", "DVC's plots template with vega inlined, for offline use"),
}

EXAMPLES = """examples:
  cxrldm generate --prompt "There is a large right pleural effusion." --n 4 --out my_samples
  cxrldm edit --image film.dcm --prompt "There is a large right pleural effusion." --edit-mask right_lower --out my_edits
  cxrldm experiments --out metrics/experiments.html

`cxrldm COMMAND --help` shows a command's options. The pipeline itself runs with `dvc repro` (README.md)."""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return (
        "usage: cxrldm COMMAND [options]\n\nText-to-chest-X-ray latent diffusion: the tools beside the DVC "
        "pipeline.\n\ncommands:\n" + "\n".join(lines) + "\n\n" + EXAMPLES
    )


def version() -> str:
    try:
        return metadata.version("cxrldm")
    except metadata.PackageNotFoundError:
        return "not installed (running from a checkout)"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] == "--version":
        print(f"cxrldm {version()}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        nearest = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {nearest[0]}?" if nearest else f"; one of: {', '.join(COMMANDS)}"
        raise SystemExit(f"cxrldm: unknown command {name!r}{hint}")
    sys.argv[0] = f"cxrldm {name}"  # argparse's usage lines then read `cxrldm generate ...`
    importlib.import_module(COMMANDS[name][0]).main(rest)


if __name__ == "__main__":
    main()
