"""The page template that makes `dvc plots show` work offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN. ``.dvc/config`` points
``plots.html_template`` at ``.dvc/plots/offline.html``, written here from the JavaScript that
the vl-convert-python package bundles (Vega-Lite 5, the schema of DVC's templates), inlined:
no network, and no copied JavaScript in the repository (the file is generated, git-ignored).
``make install`` writes it; ``python -m vat.plots_template`` writes it again.
"""

from __future__ import annotations

from pathlib import Path

from vat.io import write_text

TEMPLATE = Path(".dvc/plots/offline.html")  # .dvc/config: plots.html_template = plots/offline.html

# DVC fills {plot_divs} and {refresh_tag}; no {scripts}, so its CDN <script> tags stay out.
PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <script type="text/javascript">
@BUNDLE@
    </script>
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def page() -> str:
    """The template's text: DVC's page with vega-embed, vega-lite 5 and vega inlined."""
    import vl_convert

    v5 = [v for v in vl_convert.get_vegalite_versions() if v.startswith("5.")]
    bundle = vl_convert.javascript_bundle(vl_version=v5[-1]) if v5 else vl_convert.javascript_bundle()
    return PAGE.replace("@BUNDLE@", bundle.replace("</script", "<\\/script"))


def write(path: Path = TEMPLATE) -> Path:
    """Write the template to ``path`` (atomically) and return it."""
    write_text(page(), path)
    return path


if __name__ == "__main__":
    write()
