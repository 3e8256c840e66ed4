"""Look at the built documentation site in a real browser: headless Chromium.

    python tools/docs_browser.py [--site site] [--out site-check] [--chromium chromium]

Serves ``site/`` (built by ``make docs``) on localhost and loads four pages in headless
Chromium (Debian's ``chromium`` package): the landing page, a tutorial page, an API page and
the benchmarks. For each it checks, from the DOM Chromium rendered and from what Chromium asked
the server for:

* the page rendered: its title and its heading are in the DOM, and the theme's stylesheet and
  scripts were fetched;
* every image on it was fetched and served (200, not empty);
* every navigation link on it answers 200 from the server;
* search is there: the search box is in the DOM and the browser fetched
  ``search/search_index.json`` (the theme's search fetches it when the page loads).

It saves a screenshot of each page to ``--out`` for a person to look at, prints one line per
check and exits 1 if any failed. No Python dependency beyond the standard library.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
# (path under the site, a heading the page must show)
PAGES = [
    ("", "lightwork"),
    ("tutorial/processes-and-pools/", "Processes and Pool.map"),
    ("reference/api/", "lightwork"),
    ("benchmarks/", "Benchmarks"),
]
SEARCH_INDEX = "/search/search_index.json"
# Time for the page's scripts (the search worker fetching its index) before the DOM is dumped.
VIRTUAL_TIME_MS = "5000"


class Server(http.server.ThreadingHTTPServer):
    """Serves a folder and remembers every request: (path, status, bytes sent)."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()
        handler = functools.partial(_Handler, directory=str(folder))
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def forget(self) -> None:
        with self.lock:
            self.requests.clear()

    def served(self, path: str) -> list[tuple[int, int]]:
        with self.lock:
            return [(status, size) for p, status, size in self.requests if p == path]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        self._status, self._size = 0, 0
        super().do_GET()
        with self.server.lock:
            self.server.requests.append((urlsplit(self.path).path, self._status, self._size))

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        data = source.read()
        outputfile.write(data)
        self._size = len(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the checks report what matters


class Page(HTMLParser):
    """What a check needs from a rendered DOM: title, headings, images, nav links, search box."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.headings: list[str] = []
        self.images: list[str] = []
        self.nav_links: list[str] = []
        self.stylesheets: list[str] = []
        self.scripts: list[str] = []
        self.search_box = False
        self._in: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "a" and "md-nav__link" in classes and a.get("href"):
            self.nav_links.append(a["href"])
        elif tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheets.append(a.get("href", ""))
        elif tag == "script" and a.get("src"):
            self.scripts.append(a["src"])
        elif tag == "input" and "md-search__input" in classes:
            self.search_box = True
        if tag in ("title", "h1"):
            self._in, self._text = tag, []

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            text = "".join(self._text).strip()
            if tag == "title":
                self.title = text
            else:
                self.headings.append(text)
            self._in = None


def chromium(binary: str, url: str, screenshot: Path, profile: Path) -> str:
    """The DOM Chromium rendered for ``url``, after its scripts ran; a screenshot on the side.

    Each run gets a fresh profile, so nothing comes from the browser's cache: what the page
    needs, the server sees it asked for.
    """
    _run(binary, url, profile / "shot", f"--screenshot={screenshot}")
    return _run(binary, url, profile / "dom", "--dump-dom")


def _run(binary: str, url: str, profile: Path, mode: str) -> str:
    shutil.rmtree(profile, ignore_errors=True)
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--window-size=1280,1600",
        mode,
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def check_page(
    server: Server, binary: str, path: str, heading: str, out: Path, profile: Path
) -> list[tuple[bool, str]]:
    url = server.url + path
    shot = out / ((path.strip("/").replace("/", "-") or "index") + ".png")
    server.forget()  # what this page's load fetched, not an earlier page's
    page = Page()
    page.feed(chromium(binary, url, shot, profile))
    results = [
        (
            bool(page.title) and any(heading in h for h in page.headings),
            f"renders: title {page.title!r}, h1 {page.headings[:1]}",
        ),
        (shot.is_file() and shot.stat().st_size > 10_000, f"screenshot {shot}"),
    ]
    for asset in page.stylesheets + page.scripts:
        served = server.served(urlsplit(urljoin(url, asset)).path)
        results.append((any(s == 200 for s, _ in served), f"asset fetched: {asset}"))
    for src in page.images:
        served = server.served(urlsplit(urljoin(url, src)).path)
        ok = any(status == 200 and size > 0 for status, size in served)
        results.append((ok, f"image loaded: {src} {served}"))
    bad = [h for h in dict.fromkeys(page.nav_links) if status_of(urljoin(url, h)) != 200]
    results.append(
        (
            len(page.nav_links) > 10 and not bad,
            f"{len(page.nav_links)} navigation links answer; failing: {bad}",
        )
    )
    results.append((page.search_box, "search box in the DOM"))
    index = server.served(SEARCH_INDEX)
    results.append(
        (
            any(s == 200 and n > 0 for s, n in index),
            f"search index fetched by the page: {index[:1]}",
        )
    )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site")
    parser.add_argument("--out", type=Path, default=ROOT / "site-check", help="screenshots")
    parser.add_argument("--chromium", default="chromium", help="the browser to run")
    args = parser.parse_args(argv)
    binary = shutil.which(args.chromium)
    if binary is None:
        parser.error(f"{args.chromium!r} not found: apt-get install chromium (Debian)")
    if not (args.site / "index.html").is_file():
        parser.error(f"no site at {args.site}: build it first with `make docs`")
    if not (args.site / SEARCH_INDEX.lstrip("/")).is_file():
        parser.error(f"{args.site / SEARCH_INDEX.lstrip('/')} is missing: search would not work")
    args.out.mkdir(parents=True, exist_ok=True)

    server = Server(args.site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    failed = 0
    try:
        with tempfile.TemporaryDirectory() as profile:
            for path, heading in PAGES:
                print(f"{server.url}{path}")
                for ok, what in check_page(server, binary, path, heading, args.out, Path(profile)):
                    failed += not ok
                    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    finally:
        server.shutdown()
    verdict = f"{failed} checks failed" if failed else "all checks passed"
    print(f"{verdict}; screenshots in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
