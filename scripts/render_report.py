#!/usr/bin/env python3
"""Render a pipeline report (report.html) in headless Chromium and save a
full-page screenshot, to check by eye that it displays.

    python scripts/render_report.py demo-out/report.html --out report.png

Needs a Chromium binary (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, default=Path("report.png"))
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=4200)
    args = ap.parse_args()
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        print("no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    cmd = [
        browser,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={args.width},{args.height}",
        f"--screenshot={args.out.resolve()}",
        args.report.resolve().as_uri(),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or not args.out.exists():
        print(p.stderr[-2000:], file=sys.stderr)
        return 1
    print(f"screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
