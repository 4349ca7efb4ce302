"""What the browser tests share: Debian's Chromium, its flags, the screenshot folder, a phone.

Screenshots go to a temporary folder (``make screenshots`` points ``REMINDBOT_SCREENSHOTS_DIR``
at docs/screenshots/ to refresh the docs' copies; the test suite never rewrites tracked files).
The ``browser`` fixture itself is in ``tests/conftest.py``; it skips when Chromium or Playwright
is missing, unless ``REMINDBOT_REQUIRE_BROWSER=1`` says a browser run is required.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(os.environ.get("REMINDBOT_SCREENSHOTS_DIR") or tempfile.mkdtemp(prefix="remindbot-shots-"))
SHOTS.mkdir(parents=True, exist_ok=True)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 2, "locale": "zh-CN"}

# Elements or tables wider than the viewport (a phone page must not scroll sideways).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > width + 0.5)
    .map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 30));
  const tables = [...document.querySelectorAll('table')].filter(t => t.scrollWidth > t.parentElement.clientWidth + 0.5)
    .map(t => t.className);
  const cards = [...document.querySelectorAll('.table-card')].filter(c => c.scrollWidth > c.clientWidth + 0.5)
    .map(c => c.className);
  return {page: document.documentElement.scrollWidth, width, wide, tables, cards};
}"""


def need_browser() -> None:
    """Skip (or fail, with REMINDBOT_REQUIRE_BROWSER=1) when Chromium or Playwright is missing."""
    required = os.environ.get("REMINDBOT_REQUIRE_BROWSER") == "1"
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed"
    if problem and required:
        pytest.fail(f"REMINDBOT_REQUIRE_BROWSER=1 but {problem}")
    if problem:
        pytest.skip(problem)
