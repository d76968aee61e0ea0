"""PNG, SVG and self-contained HTML export of Altair charts, entirely offline.

Conversion runs in vl-convert's embedded JavaScript engine with the
Vega-Lite version that Altair writes specs for. A spec that names a data URL
is rejected, never fetched. The HTML export inlines the Vega, Vega-Lite and
Vega-Embed bundle, so one file contains every figure and opens without a
connection.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from functools import lru_cache

import altair as alt
import vl_convert as vlc

Figure = tuple[str, str, object]

# Charts carry their data inline, so every URL is rejected. Otherwise vl-convert
# resolves a relative data URL against the vega-datasets web site and fetches it.
NO_URLS: list[str] = []

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
figure { margin: 0 0 3rem 0; }
figure h2 { font-size: 1.2rem; margin-bottom: 0.5rem; }
figcaption { color: #555; margin-top: 0.5rem; }
.figure-body { overflow-x: auto; }
"""
EMBED_OPTIONS = {
    "renderer": "svg",
    "actions": {"export": True, "source": False, "compiled": False, "editor": False},
}


def to_png(chart, scale: float = 2.0) -> bytes:
    """Render ``chart`` (an Altair chart or a Vega-Lite dict) to PNG bytes."""
    return vlc.vegalite_to_png(
        _spec(chart), vl_version=_vl_version(), scale=scale, allowed_base_urls=NO_URLS
    )


def to_svg(chart) -> str:
    """Render ``chart`` (an Altair chart or a Vega-Lite dict) to an SVG document."""
    return vlc.vegalite_to_svg(_spec(chart), vl_version=_vl_version(), allowed_base_urls=NO_URLS)


def to_html(
    figures: Sequence[Figure], *, title: str = "rshift figures", interactive: bool = True
) -> str:
    """Return one self-contained HTML page holding every figure.

    Args:
        figures: ``(title, caption, chart)`` per figure, in page order.
        title: the page title.
        interactive: inline the Vega JavaScript bundle and embed each spec,
            which keeps tooltips. False embeds static inline SVG instead (smaller).

    Nothing in the page loads from the network.
    """
    if interactive:
        bodies = [_figure(i, name, caption) for i, (name, caption, _) in enumerate(figures)]
        specs = [_spec(chart) for _, _, chart in figures]
        head, tail = f"<script>{_script_safe(_bundle())}</script>", _embed_script(specs)
    else:
        bodies = [
            _figure(i, name, caption, _inline_svg(chart))
            for i, (name, caption, chart) in enumerate(figures)
        ]
        head, tail = "", ""
    return _page(title, head, "\n".join(bodies), tail)


def _spec(chart) -> dict:
    return chart if isinstance(chart, dict) else chart.to_dict()


def _vl_version() -> str:
    # Altair's schema version 'v6.4.1' becomes vl-convert's 'v6_4'.
    return "_".join(alt.SCHEMA_VERSION.split(".")[:2])


@lru_cache(maxsize=1)
def _bundle() -> str:
    """Return Vega, Vega-Lite and Vega-Embed as one script (about 0.9 MB, built once)."""
    return vlc.javascript_bundle(vl_version=_vl_version())


def _script_safe(code: str) -> str:
    """Keep a closing tag inside script text from ending the script element."""
    return code.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


def _embed_script(specs: list[dict]) -> str:
    # "<" occurs only inside JSON strings, where \u003c reads back the same, so
    # a label containing "</script" or "<!--" cannot change how the page parses.
    data = json.dumps(specs).replace("<", "\\u003c")
    options = json.dumps(EMBED_OPTIONS)
    return (
        "<script>\n"
        f"const specs = {data};\n"
        "specs.forEach((spec, i) => {\n"
        f'  vegaEmbed("#figure-" + i, spec, {options}).catch((error) => {{\n'
        '    document.getElementById("figure-" + i).textContent = String(error);\n'
        "  });\n"
        "});\n"
        "</script>"
    )


def _figure(index: int, name: str, caption: str, content: str = "") -> str:
    caption_html = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f"<figure><h2>{html.escape(name)}</h2>"
        f'<div class="figure-body" id="figure-{index}">{content}</div>{caption_html}</figure>'
    )


def _inline_svg(chart) -> str:
    svg = to_svg(chart)
    # An XML declaration is not allowed inside an HTML body.
    return svg[svg.index("<svg") :] if "<svg" in svg else svg


def _page(title: str, head: str, body: str, tail: str) -> str:
    name = html.escape(title)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{name}</title>\n<style>{PAGE_STYLE}</style>\n{head}\n</head>\n"
        f"<body>\n<h1>{name}</h1>\n{body}\n{tail}\n</body>\n</html>\n"
    )
