"""Tests for the documentation site: its tutorial runs, its pages render.

* docs/tutorial.md: its ```pycon blocks are doctests, run in order in one
  namespace; every printed line must match the page.
* docs/api/: one page per public module, folders mirrored
  (numpyvae/reference/kl.py -> docs/api/reference/kl.md), each listed in
  a toctree of docs/api/index.md; the public faces numpyvae.gradcheck and
  numpyvae.testing name every name they hand on.
* The built site, opened in headless Chromium (Debian's ``chromium`` and
  ``chromium-driver``, driven through selenium): on the key pages the
  math was typeset by MathJax (no raw TeX left in the visible text, no
  MathJax error), every image loaded, and every link into the site
  resolves. The site is the one in ``$NUMPYVAE_SITE`` if set (CI builds
  it first), else it is built here; without Sphinx, selenium or
  Chromium these tests skip and say which is missing.

Run ``python tests/test_site.py SITE_DIR OUT_DIR`` to save a screenshot
of each key page.
"""

from __future__ import annotations

import contextlib
import doctest
import functools
import http.server
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
KEY_PAGES = ["index.html", "tutorial.html", "derivations.html", "math-to-code.html",
             "experiments.html", "api/reference/kl.html"]
MATH_PAGES = ["tutorial.html", "derivations.html", "math-to-code.html"]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


# --- the tutorial -----------------------------------------------------------

def pycon_blocks(path: Path) -> list[str]:
    """The ```pycon fenced blocks of a markdown file, in order."""
    return re.findall(r"^```pycon\n(.*?)^```", path.read_text(), re.S | re.M)


def run_doctests(path: Path) -> doctest.TestResults:
    """Run a page's pycon blocks as doctests in one shared namespace."""
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs: dict = {"__name__": f"docs_{path.stem}"}
    for i, block in enumerate(pycon_blocks(path)):
        test = parser.get_doctest(block, globs, f"{path.name} block {i + 1}",
                                  str(path), 0)
        runner.run(test, clear_globs=False)
        globs = test.globs  # a DocTest works on a copy: carry it forward
    return runner.summarize(verbose=False)


def test_tutorial_runs_and_prints_what_the_page_shows(capsys):
    path = DOCS / "tutorial.md"
    assert len(pycon_blocks(path)) >= 8
    results = run_doctests(path)
    report = capsys.readouterr().out
    assert results.attempted >= 40
    assert results.failed == 0, report


def test_a_wrong_output_in_a_page_fails(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("```pycon\n>>> x = 2\n```\n\ntext\n\n```pycon\n>>> x + 1\n4\n```\n")
    results = run_doctests(page)
    assert (results.attempted, results.failed) == (2, 1)
    assert "Expected:\n    4\nGot:\n    3" in capsys.readouterr().out


def public_modules() -> set[str]:
    """numpyvae/reference/kl.py -> 'reference/kl'; a name starting with _ is private."""
    package = ROOT / "numpyvae"
    return {path.relative_to(package).with_suffix("").as_posix()
            for path in package.rglob("*.py")
            if not any(part.startswith("_") for part in path.relative_to(package).parts)}


def test_every_public_module_has_an_api_page():
    modules = public_modules()
    api = DOCS / "api"
    pages = {path.relative_to(api).with_suffix("").as_posix()
             for path in api.rglob("*.md")} - {"index"}
    index = (api / "index.md").read_text()
    listed = set(re.findall(r"^([\w/]+)$", index, re.M))
    assert {"vae", "reference/vae", "fast/fused_step", "checks/gradcheck",
            "app/cli", "gradcheck"} <= modules
    assert modules - pages == set(), "add docs/api/<folder>/<module>.md like docs/api/reference/kl.md"
    assert modules - listed == set(), "list the module in a toctree of docs/api/index.md"
    assert pages - modules == set(), "an API page for a module that is gone"
    for module in modules:  # each page documents the module it is named after
        dotted = "numpyvae." + module.replace("/", ".")
        assert f".. automodule:: {dotted}\n" in (api / f"{module}.md").read_text(), module


@pytest.mark.parametrize("face", ["gradcheck", "testing"])
def test_a_public_face_lists_every_name_it_hands_on(face):
    """numpyvae.gradcheck and numpyvae.testing re-export names documented
    in numpyvae/checks/; their pages name each one (and document none, so
    no object is described twice)."""
    import importlib

    names = importlib.import_module(f"numpyvae.{face}").__all__
    page = (DOCS / "api" / f"{face}.md").read_text()
    assert ":no-members:" in page
    assert [name for name in names if f"`{name}" not in page] == []


# --- the built site in a browser -------------------------------------------

@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The built site: $NUMPYVAE_SITE, or a fresh build with warnings as errors."""
    if os.environ.get("NUMPYVAE_SITE"):
        path = Path(os.environ["NUMPYVAE_SITE"])
        assert (path / "index.html").exists(), f"no built site in {path}"
        return path
    pytest.importorskip("sphinx", reason="Sphinx is not installed: pip install '.[docs]'")
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("site")
    with warnings.catch_warnings():  # Sphinx's notices to extension authors
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        status = build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)])
    assert status == 0, "the site build failed or warned"
    return out


@contextlib.contextmanager
def serve(site: Path):
    """The site served over HTTP on 127.0.0.1, as a reader's browser gets it."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install '.[docs]'"
    for path, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
        if not shutil.which(path):
            return f"{path} not found: apt-get install {package} (Debian)"
    return None


def start_chromium(profile: Path):
    """Headless Chromium with a fresh profile, driven by chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1600,1600"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


@pytest.fixture(scope="session")
def server(site):
    with serve(site) as url:
        yield url


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


# Run in the page: wait for MathJax to finish, then report what a reader sees.
PAGE_STATE = """
const done = arguments[arguments.length - 1];
const report = () => done({
  mathjax: typeof MathJax !== "undefined" && !!MathJax.startup,
  typeset: document.querySelectorAll("mjx-container").length,
  errors: document.querySelectorAll("mjx-merror, .MathJax_Error, .katex-error").length,
  text: document.body.innerText,
  images: [...document.images].map(im => ({src: im.src, ok: im.complete && im.naturalWidth > 0})),
  links: [...document.querySelectorAll("a[href]")].map(a => a.href),
});
if (typeof MathJax !== "undefined" && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(report, report);
} else {
  report();
}
"""


def page_state(browser, url: str) -> dict:
    browser.get(url)
    return browser.execute_async_script(PAGE_STATE)


RAW_TEX = re.compile(r"\$\$|\\frac|\\mathbb|\\mathcal|\\lVert|\\left|\\qquad|\\varepsilon")


@pytest.mark.parametrize("page", KEY_PAGES)
def test_key_page_is_typeset_and_its_images_load(browser, server, page):
    state = page_state(browser, f"{server}/{page}")
    if page in MATH_PAGES:  # Sphinx loads MathJax only where there is math
        assert state["mathjax"], "MathJax did not load"
        assert state["typeset"] >= 20, "too few typeset equations"
    assert state["errors"] == 0, "MathJax reported an error"
    assert RAW_TEX.findall(state["text"]) == [], "raw TeX left in the visible text"
    broken = [image["src"] for image in state["images"] if not image["ok"]]
    assert broken == []
    if page == "experiments.html":
        assert len(state["images"]) >= 6  # every experiment's figure


def test_api_page_shows_the_docstring_equations_as_text(browser, server):
    state = page_state(browser, f"{server}/api/reference/kl.html")
    text = state["text"]
    assert "kl_forward(mu, log_var)" in text
    assert "kl = 0.5 * sum_j (mu_j^2 + exp(log_var_j) - log_var_j - 1)" in text


def test_math_to_code_links_each_function_to_its_api_entry(browser, server):
    state = page_state(browser, f"{server}/math-to-code.html")
    links = set(state["links"])
    assert f"{server}/api/reference/kl.html#numpyvae.reference.kl.kl_forward" in links
    assert f"{server}/api/reference/kl.html#numpyvae.reference.kl.kl_backward" in links
    assert "def kl_forward" not in state["text"]


def test_every_link_inside_the_site_resolves(site):
    sys.path.insert(0, str(DOCS / "tools"))
    from check_site_links import broken_links

    assert broken_links(site) == []


def test_the_link_check_catches_a_broken_link_anchor_and_remote_script(tmp_path):
    sys.path.insert(0, str(DOCS / "tools"))
    from check_site_links import broken_links

    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="a/b.html#here">ok</a> <a href="https://example.org">away</a>'
        '<a href="gone.html">x</a> <a href="a/b.html#nowhere">y</a>'
        '<script src="https://cdn.example.org/mathjax.js"></script>')
    (tmp_path / "a" / "b.html").write_text('<h1 id="here">b</h1><img src="../index.html">')
    assert broken_links(tmp_path) == [
        "index.html: gone.html",
        "index.html: a/b.html#nowhere (no such anchor)",
        "index.html: https://cdn.example.org/mathjax.js (loads from outside)"]


def save_screenshots(site: Path, out: Path) -> None:
    """A full-page screenshot of each key page, for a person to look at."""
    out.mkdir(parents=True, exist_ok=True)
    with serve(site) as url, tempfile.TemporaryDirectory() as profile:
        driver = start_chromium(Path(profile))
        try:
            for page in KEY_PAGES:
                driver.set_window_size(1600, 1600)
                page_state(driver, f"{url}/{page}")
                height = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(1600, min(height, 8000))
                driver.save_screenshot(str(out / (page[:-5].replace("/", "_") + ".png")))
        finally:
            driver.quit()


if __name__ == "__main__":
    save_screenshots(Path(sys.argv[1]), Path(sys.argv[2]))
