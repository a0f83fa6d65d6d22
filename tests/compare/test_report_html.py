"""The HTML report: one self-contained file whose inline SVG charts render in a real browser.

The browser test runs Debian's headless Chromium (``apt-get install chromium``) and is skipped,
with the reason shown, where it is not installed.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from tests.compare.test_report import UNPRICED, sample_report

from llmos.compare.report_html import CHART_IDS, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every way a page can reach out: src/href/action to a URL, CSS url(), @import, srcset.
EXTERNAL = re.compile(
    r"""(?:src|href|action|srcset|xlink:href)\s*=\s*["']?\s*(?:https?:|//|ftp:)"""
    r"""|url\(\s*["']?\s*(?:https?:|//)|@import""",
    re.IGNORECASE,
)


def svg(html: str, chart_id: str) -> str:
    match = re.search(rf'<svg class="chart" id="{chart_id}"[^>]*>.*?</svg>', html, re.S)
    assert match, f"no chart {chart_id}"
    return match.group(0)


# --------------------------------------------------------------------------- the file


def test_the_report_is_one_file_that_loads_nothing_from_anywhere() -> None:
    html = render_html(sample_report())

    assert html.startswith("<!DOCTYPE html>")
    assert EXTERNAL.search(html) is None
    assert "<link" not in html and "<img" not in html and "<iframe" not in html
    # The policy forbids any fetch even if a later change slipped one in.
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_untrusted_text_is_escaped() -> None:
    html = render_html(sample_report())
    assert "<img src=x onerror=alert(1)>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # the error message, shown as text


def test_every_chart_is_an_inline_svg_with_its_marks() -> None:
    report = sample_report()
    html = render_html(report)

    for chart_id in CHART_IDS:
        svg(html, chart_id)
    scatter = svg(html, "quality-vs-price")
    points = re.findall(r'<circle class="point" data-target="([^"]+)"', scatter)
    assert sorted(points) == ["local:gemma-3-270m", "openai:gpt-5.4-mini"]
    # The target without a price is named under the chart, with the reason.
    assert f"box:big: price n/a ({UNPRICED})" in html

    latency = svg(html, "latency")
    assert len(re.findall(r'<rect class="bar"', latency)) == 4  # 2 timed targets x 2 series
    assert "n/a (every call failed)" in latency
    assert len(re.findall(r'<rect class="bar"', svg(html, "throughput"))) == 2

    breakdown = svg(html, "score-breakdown")
    segments = re.findall(
        r'<rect class="bar segment" data-target="([^"]+)" data-dimension="([^"]+)" '
        r'x="[^"]+" y="[^"]+" width="([^"]+)"',
        breakdown,
    )
    paid = {d: float(w) for t, d, w in segments if t == "openai:gpt-5.4-mini"}
    assert set(paid) == {"quality", "performance", "price", "usability"}
    # Segments are weighted shares: they add up to the overall score (75 of 100).
    plot_width = 900 - 260 - 120
    assert sum(paid.values()) == pytest.approx(plot_width * 0.75, abs=0.5)


def test_the_report_shows_weights_rubric_and_method_notes() -> None:
    html = render_html(sample_report())

    assert 'id="weights"' in html and "quality 0.4, performance 0.2" in html
    assert 'id="rubric-table"' in html and "success_rate" in html
    assert "Perplexity was computed on each target&#x27;s own output" in html
    assert "Code was not executed" in html
    assert "ai21:jamba-mini: no API key (set AI21_API_KEY)" in html
    assert 'id="errors"' in html and "APIConnectionError" in html


# --------------------------------------------------------------------------- in a browser


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of an 8-bit RGB/RGBA PNG (no Pillow needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    width = height = depth = color = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            chunks.append(body)
        elif kind == b"IEND":
            break
    assert depth == 8 and color in (2, 6), f"unexpected PNG format {depth=} {color=}"
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        row = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:
            row = bytearray((a + b) & 0xFF for a, b in zip(row, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[i] = (row[i] + pred) & 0xFF
        colours.update(bytes(row[i : i + 3]) for i in range(0, stride, bpp))
        prev = row
    return width, height, colours


def chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium): the HTML report was not "
    "rendered in a browser",
)
def test_charts_render_in_headless_chromium(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_report()), encoding="utf-8")
    url = page.resolve().as_uri()

    shot = tmp_path / "shot.png"
    done = chromium(
        [f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path / "profile-shot"
    )
    assert shot.exists(), done.stderr[-2000:]
    width, height, colours = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    # The charts' own fills were painted: the first series colour (#2563eb) and the third
    # (#16a34a, the throughput bars).
    assert bytes((0x25, 0x63, 0xEB)) in colours
    assert bytes((0x16, 0xA3, 0x4A)) in colours

    dom = chromium(["--dump-dom", url], tmp_path / "profile-dom").stdout
    # The inline script ran after load and found every chart laid out with a non-empty box.
    assert f'data-charts-rendered="{len(CHART_IDS)}"' in dom
    for chart_id in CHART_IDS:
        tag = re.search(rf'<svg class="chart" id="{chart_id}"[^>]*>', dom)
        assert tag and 'data-rendered="yes"' in tag.group(0), chart_id
    assert len(re.findall(r'<circle class="point"', dom)) == 2
