import re
import shutil
import subprocess

import pytest

from vlir.corpus.show import write_page


def test_page_holds_records_boxes_crops_and_checks(vlir_output, tmp_path):
    dest = tmp_path / "browse.html"
    assert write_page(vlir_output, dest, n=50) == 8  # 6 accepted + 2 rejected
    html = dest.read_text()
    assert html.count('<section class="record accepted"') == 6
    assert html.count('<section class="record rejected"') == 2
    assert html.count('alt="crop ') == 1 + 2 + 3 + 1 + 2 + 3
    assert "answer_correct" in html and "look #3" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert write_page(vlir_output, dest, n=3) == 3


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (make test installs it)")
@pytest.mark.subprocess
def test_page_renders_in_headless_chromium(vlir_output, tmp_path):
    dest = tmp_path / "browse.html"
    write_page(vlir_output, dest, n=50)
    r = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                        "--dump-dom", dest.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", r.stdout)
    assert body, r.stdout[:500]
    attrs = dict(re.findall(r'(data-[a-z]+)="(\d+)"', body.group(1)))
    assert attrs.get("data-rendered") == "8"
    assert int(attrs["data-images"]) == 6 + 12  # previews (the rejects' images are missing) + crops
    assert attrs.get("data-broken") == "0"
