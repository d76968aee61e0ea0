"""PNG, SVG and HTML export: formats, sizes and an offline, self-contained page."""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET

import altair as alt
import pandas as pd
import pytest

from rshift.export import to_html, to_png, to_svg

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_chart(title: str = "small") -> alt.Chart:
    frame = pd.DataFrame({"x": [0, 1, 2], "y": [1.0, 3.0, 2.0]})
    return alt.Chart(frame, title=title, width=200, height=100).mark_line().encode(x="x", y="y")


def png_width(data: bytes) -> int:
    # Width is the first big-endian field of IHDR, after the signature, length and type.
    return struct.unpack(">I", data[16:20])[0]


def script_tags(page: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", page, flags=re.IGNORECASE)


@pytest.fixture(scope="module")
def page() -> str:
    figures = [
        ("First <figure>", "Caption with <b>markup</b> & more", small_chart()),
        ("Second", "", small_chart("second")),
    ]
    return to_html(figures, title="Talk figures")


def test_png_signature():
    assert to_png(small_chart()).startswith(PNG_SIGNATURE)


def test_png_scale():
    assert png_width(to_png(small_chart(), scale=2)) == 2 * png_width(to_png(small_chart(), 1))


def test_png_from_dict():
    assert to_png(small_chart().to_dict()).startswith(PNG_SIGNATURE)


def test_svg_parses():
    root = ET.fromstring(to_svg(small_chart()))
    assert root.tag.endswith("svg")


def test_svg_text():
    assert "small" in to_svg(small_chart())


def test_data_url_rejected():
    spec = {
        "data": {"url": "data/cars.csv"},
        "mark": "point",
        "encoding": {"x": {"field": "a", "type": "quantitative"}},
    }
    with pytest.raises(ValueError, match="not allowed"):
        to_svg(spec)


def test_html_no_script_src(page):
    assert all("src=" not in tag for tag in script_tags(page))


def test_html_no_remote_links(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page, flags=re.IGNORECASE)


def test_html_bundle_inline(page):
    assert "vegaEmbed" in page
    assert len(page) > 500_000


def test_html_figures(page):
    assert 'id="figure-0"' in page
    assert 'id="figure-1"' in page
    assert '"second"' in page


def test_html_escapes(page):
    assert "First &lt;figure&gt;" in page
    assert "Caption with &lt;b&gt;markup&lt;/b&gt; &amp; more" in page


def test_html_closing_tag_in_spec():
    page = to_html([("x", "", small_chart("</script><script>alert(1)</script>"))])
    assert len(script_tags(page)) == 2
    assert page.lower().count("</script") == 2


def test_html_static():
    page = to_html([("Static", "caption", small_chart())], interactive=False)
    assert "<svg" in page
    assert not script_tags(page)
    assert "<?xml" not in page
