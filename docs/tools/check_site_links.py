"""Check every link inside the built documentation site.

For each HTML page of the site, every relative ``href`` and ``src``
must name a file of the site and, when it has a ``#fragment``, an
element with that id in that file. Links a reader may follow to other
sites are not checked (there is no network here), but a script, style
sheet or image loaded from another site is an error: the site must
work offline.

    python docs/tools/check_site_links.py _site

prints each broken link as ``page: target`` and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.targets: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            elif name in ("href", "src") and value and tag != "base":
                self.targets.append((tag, value))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(site: Path) -> list[str]:
    """Links of the site's pages that lead nowhere, as 'page: target'."""
    site = site.resolve()
    pages = {path: _parse(path) for path in sorted(site.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        for tag, target in page.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc:
                if tag != "a" and parts.scheme in ("http", "https", "file", ""):
                    # a script, style sheet or image from elsewhere: not offline
                    broken.append(f"{path.relative_to(site)}: {target} (loads from outside)")
                continue  # a link a reader may follow, or mailto:, data:
            file = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if file.is_dir():
                file = file / "index.html"
            if site not in file.parents and file != site:
                broken.append(f"{path.relative_to(site)}: {target} (outside the site)")
            elif not file.exists():
                broken.append(f"{path.relative_to(site)}: {target}")
            elif parts.fragment and file.suffix == ".html":
                ids = pages[file].ids if file in pages else _parse(file).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {target} (no such anchor)")
    return broken


def main(argv: list[str]) -> int:
    site = Path(argv[0] if argv else "_site")
    if not (site / "index.html").exists():
        print(f"{site}: no index.html; build the site first", file=sys.stderr)
        return 2
    broken = broken_links(site)
    for link in broken:
        print(link)
    pages = sum(1 for _ in site.rglob("*.html"))
    print(f"{len(broken)} broken links in {pages} pages", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
