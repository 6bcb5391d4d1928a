"""An HTML page template for `dvc plots show/diff` with vega, vega-lite and vega-embed inlined, so the
plots render on machines without internet (DVC's default page loads them from a CDN).

    npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2      # the versions DVC's page asks for
    python -m cxrldm.report.offline_plots . .dvc/plots_offline.html

DVC fills `{plot_divs}`; the page has no `{scripts}` placeholder, so DVC's CDN script tags are left out.
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

from cxrldm.io import atomic_path

LIBRARIES = (
    ("vega", "5.20.2", "build/vega.min.js"),
    ("vega-lite", "5.2.0", "build/vega-lite.min.js"),
    ("vega-embed", "6.18.2", "build/vega-embed.min.js"),
)

PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <title>DVC Plot</title>
{scripts}
    <style>
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def library_source(folder: Path, name: str, version: str, member: str) -> str:
    archive = folder / f"{name}-{version}.tgz"
    if not archive.is_file():
        raise FileNotFoundError(f"{archive} not found: run `npm pack {name}@{version}` in {folder}")
    with tarfile.open(archive) as tar:
        return tar.extractfile(f"package/{member}").read().decode("utf-8")


def build(folder: str | Path, output: str | Path) -> None:
    scripts = []
    for name, version, member in LIBRARIES:
        source = library_source(Path(folder), name, version, member).replace("</script", "<\\/script")
        scripts.append(
            f'    <script type="text/javascript">/* {name} {version} (npm), BSD-3-Clause */\n{source}\n    </script>'
        )
    with atomic_path(output) as tmp:
        tmp.write_text(PAGE.format(scripts="\n".join(scripts)), encoding="utf-8")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description="DVC's plots page template with vega, vega-lite and vega-embed "
        "inlined from their npm packages, so `dvc plots show` works offline."
    )
    parser.add_argument("npm_pack_dir", help="folder holding the `npm pack` archives of the three libraries")
    parser.add_argument("output_html", help="the template to write (e.g. .dvc/plots_offline.html)")
    args = parser.parse_args(argv)
    build(args.npm_pack_dir, args.output_html)


if __name__ == "__main__":
    main()
