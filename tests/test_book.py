"""The Jupyter Book builds (notebooks in smoke mode, warnings as errors) and every page works offline in a browser.

These checks run on the **smoke copy** of the book, ``build/book-smoke/_build/html`` (``book/build.py --smoke``:
the notebooks executed with ``PROXFLOW_SMOKE=1``, its own execution cache and stamp), never on the lecture site
``book/_build/html`` that ``make book`` builds at the lecture budget; the cheap tests at the top check, without
building anything, that the two modes stay apart and that the lecture build does not run in smoke mode.
The smoke copy is reused when its stamp says its inputs have not changed (``book/build.py --smoke --if-stale``).
The site is served on 127.0.0.1 and opened in headless Chromium from Debian's packages through Playwright
(never ``playwright install``). Per page: the title, every image loaded, math typeset by the bundled MathJax
(no TeX errors), code cells wrapped within the column (``book/_static/wrap-code.css``), no traceback or error
output, no JavaScript error, no request that failed or left the loopback interface. At a 1366x768 laptop window
with both sidebars shown, the outputs fit and read (``book/_static/outputs-fit.css``): every table within the text
column, every output figure shown at >= 0.85 of the width it was drawn at (a 930-px figure, JupyterLab's output
width on that screen, keeps its 9-pt labels), printed output wrapped; and no generated reading
(``display(Markdown(...))``) shows its code (figures and readings: sibling tests, same page visit). The sidebar,
followed from the index, must reach every page of ``book/_toc.yml``. Screenshots go to ``build/book-screenshots/``.
Without ``/usr/bin/chromium`` (``make browser`` installs it where it can) the browser tests are skipped with the
reason; the build test still runs.
"""
from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urldefrag, urljoin, urlparse

import pytest
import yaml
from processes import stop_process
from test_notebook_layout import is_reading

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
MODE = "smoke"  # the copy these tests build and open; `make book` builds the lecture site
SCREENSHOTS = ROOT / "build" / "book-screenshots"
CHROMIUM = Path(os.environ.get("PROXFLOW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
PAGE_TIMEOUT_MS = 30_000
# a student's laptop screen: the layout checks (tables, figures, printed output fit the text column) are measured
# with the primary sidebar and the page's table of contents both shown, as at this size
VIEWPORT = {"width": 1366, "height": 768}
TABLE_SLACK_PX = 4       # a table may be this much wider than the text column (borders, rounding)
MIN_IMAGE_SCALE = 0.85   # displayed / natural width of an output figure: a 930-px figure shown >= 790 px wide
PRE_SLACK_PX = 2         # printed output (a <pre> of a cell output) must not scroll sideways by more than this
OUTPUT_CSS = ("wrap-code.css", "outputs-fit.css")  # book/_static, linked on every page by jupyter-book itself
# the tests that build the smoke copy: about 2-3 min cold on 2 cores, under a minute when fresh
slow = pytest.mark.slow


def _load_build_module() -> Any:
    spec = importlib.util.spec_from_file_location("proxflow_book_build", BOOK / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


book_build = _load_build_module()
HTML = book_build.html_dir(MODE)


def toc_pages() -> list[str]:
    """Docnames of book/_toc.yml in reading order: root, then every chapter (and nested section)."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for e in entries:
            if "file" in e:
                pages.append(str(Path(e["file"]).with_suffix("")))
            for key in ("parts", "chapters", "sections"):
                walk(e.get(key, []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return pages


PAGES = toc_pages()


# ----------------------------------------------------------------------------- build


_NOTEBOOK_SEES_SMOKE = "import os; print(os.environ.get('PROXFLOW_SMOKE', '0') == '1')"  # the notebooks' test


@pytest.mark.parametrize("caller_smoke", [None, "1", "0"])
def test_build_env_per_mode(caller_smoke: str | None) -> None:
    """The lecture build runs without PROXFLOW_SMOKE whatever the caller's environment (pytest's conftest sets it),
    the smoke copy with PROXFLOW_SMOKE=1; what a notebook kernel started in that environment decides."""
    base = {k: v for k, v in os.environ.items() if k != "PROXFLOW_SMOKE"}
    if caller_smoke is not None:
        base["PROXFLOW_SMOKE"] = caller_smoke
    lecture, smoke = book_build.build_env("lecture", base), book_build.build_env("smoke", base)
    assert "PROXFLOW_SMOKE" not in lecture
    assert smoke["PROXFLOW_SMOKE"] == "1"
    assert lecture == {k: v for k, v in smoke.items() if k != "PROXFLOW_SMOKE"}
    for mode, env, expected in (("lecture", lecture, "False"), ("smoke", smoke, "True")):
        seen = subprocess.run([sys.executable, "-c", _NOTEBOOK_SEES_SMOKE], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
        assert seen == expected, f"a notebook in the {mode} build would see SMOKE = {seen}"
    with pytest.raises(ValueError):
        book_build.build_env("fast", base)


def test_build_passes_mode_to_jupyter_book(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What build() hands to jupyter-book, per mode (jupyter-book itself is not run: its call is intercepted)."""
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((cmd, kwargs["env"]))
        return subprocess.CompletedProcess(cmd, returncode=1, stdout="")  # "failed": no stamp is written

    monkeypatch.setenv("PROXFLOW_SMOKE", "1")  # as under `make test`
    monkeypatch.setattr(book_build.subprocess, "run", fake_run)
    monkeypatch.setattr(book_build.make_tables, "main", lambda argv: 0)
    monkeypatch.setattr(book_build, "invalidate_cache_if_inputs_changed", lambda mode: None)
    monkeypatch.setattr(book_build, "stamp_path", lambda mode: tmp_path / f"{mode}.build-ok")  # real stamps untouched
    for mode in book_build.MODES:
        assert book_build.build(mode, quiet=True).returncode == 1
    (lecture_cmd, lecture_env), (smoke_cmd, smoke_env) = calls
    assert "PROXFLOW_SMOKE" not in lecture_env, "the lecture build (make book) would run the notebooks in smoke mode"
    assert smoke_env.get("PROXFLOW_SMOKE") == "1", "the smoke copy would run the notebooks at the lecture budget"
    for cmd, mode in ((lecture_cmd, "lecture"), (smoke_cmd, "smoke")):
        assert cmd[cmd.index("--path-output") + 1] == str(book_build.output_dir(mode)), cmd
        assert cmd[-1] == str(BOOK)


def test_build_trees_per_mode() -> None:
    """The lecture site is book/_build/html; the smoke copy has its own tree, cache and stamps, outside book/."""
    assert book_build.html_dir("lecture") == BOOK / "_build" / "html" == book_build.HTML
    assert book_build.output_dir("smoke") == ROOT / "build" / "book-smoke"
    assert BOOK not in book_build.build_dir("smoke").parents, "the smoke copy must not be written under book/"
    for where in ("build_dir", "html_dir", "stamp_path", "cache_dir", "execution_stamp_path"):
        lecture, smoke = getattr(book_build, where)("lecture"), getattr(book_build, where)("smoke")
        assert lecture != smoke and book_build.build_dir("lecture") in {lecture, *lecture.parents}, where
        assert book_build.build_dir("smoke") in {smoke, *smoke.parents}, where
    files = book_build.input_files()
    assert book_build.fingerprint(files, "lecture") != book_build.fingerprint(files, "smoke"), \
        "a stamp of one mode would count as a fresh build of the other"


@pytest.fixture(scope="module")
def built_html() -> Path:
    """Build the smoke copy unless its last successful build is fresh; fail with the build log's tail otherwise."""
    if not book_build.is_fresh(MODE):
        start = time.perf_counter()
        proc = book_build.build(MODE, quiet=True)
        if proc.returncode != 0:
            log = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout or "")  # no ANSI colours in the report
            interesting = [line for line in log.splitlines()
                           if re.search(r"WARNING|ERROR|Error|Traceback|failed", line)]
            pytest.fail("`book/build.py --smoke` failed (jupyter-book exit {}):\n{}\n--- last lines ---\n{}".format(
                proc.returncode, "\n".join(interesting[-40:]), "\n".join(log.splitlines()[-30:])), pytrace=False)
        print(f"book (smoke copy) built in {time.perf_counter() - start:.1f} s")
    return HTML


@slow
def test_book_builds(built_html: Path) -> None:
    for page in PAGES:
        assert (built_html / f"{page}.html").is_file(), f"{page}.html missing from {built_html}"
    assert (built_html / "mathjax" / "tex-mml-chtml.js").is_file(), "the bundled MathJax was not copied"
    html = "\n".join((built_html / f"{p}.html").read_text(encoding="utf-8") for p in PAGES)
    assert "cdn.jsdelivr.net/npm/mathjax" not in html, "pages load MathJax from a CDN (mathjax_path not applied)"
    for css in OUTPUT_CSS:
        assert (built_html / "_static" / css).is_file(), f"book/_static/{css} was not copied"
    for page in PAGES:
        text = (built_html / f"{page}.html").read_text(encoding="utf-8")
        for css in OUTPUT_CSS:
            assert len(re.findall(r'<link[^>]+href="[^"]*_static/' + re.escape(css), text)) == 1, \
                f"{page}.html does not link _static/{css} exactly once"


# ----------------------------------------------------------------------------- server and browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(built_html: Path) -> Iterator[str]:
    """The built site served by ``python -m http.server`` on 127.0.0.1; stopped (by its pid) at teardown."""
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
                              cwd=built_html, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "index.html", timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"http.server exited with status {server.returncode}", pytrace=False)
                time.sleep(0.1)
        else:
            pytest.fail(f"http.server did not answer on {base} within 10 s", pytrace=False)
        yield base
    finally:
        stop_process(server, timeout=10)


@pytest.fixture(scope="module")
def browser_context() -> Iterator[Any]:
    """Headless Chromium (Debian's binary) with a fresh profile; skips with the reason where it is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`make browser`, needs root and apt-get) "
                    "to run the browser checks of the book")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f"playwright is not installed ({err}); `make setup` installs it from requirements.txt")
    with tempfile.TemporaryDirectory(prefix="book-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


class PageVisit:
    """One page opened in the browser, with every request, failure and JavaScript error it caused."""

    def __init__(self, context: Any, url: str) -> None:
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        self.page = context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        self.page.on("response", lambda r: r.status >= 400 and self.failed.append(f"{r.url} (HTTP {r.status})"))
        self.page.on("pageerror", lambda e: self.errors.append(f"JavaScript error: {e}"))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console error: {m.text}"))
        self.response = self.page.goto(url, wait_until="networkidle")

    def non_loopback(self) -> list[str]:
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about", "chrome", "chrome-extension"):
                continue
            if parsed.hostname not in LOOPBACK:
                out.append(url)
        return out

    def close(self) -> None:
        self.page.close()


def _page_url(base: str, page: str) -> str:
    return urljoin(base, f"{page}.html")


# ----------------------------------------------------------------------------- layout: outputs fit and read


# One pass over the page: the text column, and every table, output figure, printed output and code cell input in it.
_LAYOUT_JS = r"""async () => {
    const shown = e => e.getClientRects().length > 0;
    const article = document.querySelector('main article.bd-article') || document.querySelector('main');
    const st = getComputedStyle(article);
    const column = article.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
    const squash = (t, n) => t.trim().replace(/\s+/g, ' ').slice(0, n);
    const imgs = Array.from(document.querySelectorAll('main .cell_output img'));
    await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
    const primary = document.querySelector('.bd-sidebar-primary');
    const secondary = document.querySelector('.bd-sidebar-secondary');
    const width = e => (e && shown(e) && getComputedStyle(e).visibility !== 'hidden')
        ? Math.round(e.getBoundingClientRect().width) : 0;
    return {
        viewport: window.innerWidth, column: Math.round(column),
        sheets: Array.from(document.styleSheets).map(s => (s.href || '').split('?')[0].split('/').pop()),
        sidebars: [width(primary), width(secondary)],
        tables: Array.from(document.querySelectorAll('main table')).filter(shown).map(t => ({
            width: Math.ceil(Math.max(t.scrollWidth, t.getBoundingClientRect().width)),
            columns: Math.max(0, ...Array.from(t.rows).map(
                r => Array.from(r.cells).reduce((n, c) => n + c.colSpan, 0))),
            output: !!t.closest('.cell_output'), head: squash(t.textContent, 60)})),
        images: imgs.filter(i => shown(i) && i.naturalWidth).map(i => ({
            src: (i.currentSrc || i.src).split('/').pop().slice(0, 80),
            shown: i.getBoundingClientRect().width, natural: i.naturalWidth})),
        pres: Array.from(document.querySelectorAll('main .cell_output pre')).filter(shown).map(e => ({
            scroll: e.scrollWidth, client: e.clientWidth, whiteSpace: getComputedStyle(e).whiteSpace,
            line: squash(e.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, ''), 80)})),
        markdownCode: Array.from(document.querySelectorAll('main .cell_input'))
            .filter(e => e.textContent.includes('display(Markdown('))
            .map(e => ({code: e.textContent, shown: shown(e)})),
    };
}"""


def measure_layout(p: Any) -> dict[str, Any]:
    """What the layout checks need from an open page (one ``page.evaluate``)."""
    return p.evaluate(_LAYOUT_JS)


def layout_problems(page: str, layout: dict[str, Any]) -> dict[str, list[str]]:
    """Per check, a message for each table wider than the text column, output figure shown shrunk, printed output
    that scrolls sideways, and code cell whose input is shown although it only writes a ``display(Markdown(...))``
    reading (``is_reading``, the rule tests/test_notebook_layout.py applies to the notebooks: such a cell is tagged
    ``remove-input``); "mixed": cells that also compute or draw (a warning). Empty lists: the page passes."""
    column, vw = layout["column"], layout["viewport"]
    where = f"{page} (text column {column} px at a {vw}-px-wide window, sidebars {layout['sidebars']} px)"
    tables = [f"{where}: a table of {t['columns']} columns{' (cell output)' if t['output'] else ''} is "
              f"{t['width']} px wide, {t['width'] - column} px more than the column: {t['head']!r}"
              for t in layout["tables"] if t["width"] > column + TABLE_SLACK_PX]
    images = [f"{where}: figure {i['src']} is shown {i['shown']:.0f} px wide for {i['natural']} px drawn, "
              f"ratio {i['shown'] / i['natural']:.2f} < {MIN_IMAGE_SCALE} (its text shrinks below ~9 pt)"
              for i in layout["images"] if i["shown"] < MIN_IMAGE_SCALE * i["natural"]]
    pres = [f"{where}: printed output {e['scroll']} px wide in a {e['client']}-px box (white-space: "
            f"{e['whiteSpace']}), readers must scroll: {e['line']!r}"
            for e in layout["pres"] if e["scroll"] > e["client"] + PRE_SLACK_PX]
    code = [f"{page}: the code of a generated reading is shown{'' if c['shown'] else ' (behind a toggle)'} "
            f"(tag the cell remove-input): {_first_line(c['code'])!r}"
            for c in layout["markdownCode"] if is_reading(c["code"])]
    mixed = [f"{page}: a cell that computes or draws and also displays a reading shows its code (split it, and tag "
             f"the reading remove-input): {_first_line(c['code'])!r}"
             for c in layout["markdownCode"] if not is_reading(c["code"])]
    return {"tables": tables, "images": images, "pres": pres, "code": code, "mixed": mixed}


def _first_line(code: str) -> str:
    return code.strip().split("\n")[0][:100]


# layouts measured by test_page_in_browser, reused by the tests below (one page load per page)
_LAYOUTS: dict[str, dict[str, Any]] = {}


# ----------------------------------------------------------------------------- per page


@slow
@pytest.mark.parametrize("page", PAGES)
def test_page_in_browser(page: str, browser_context: Any, site: str) -> None:
    visit = PageVisit(browser_context, _page_url(site, page))
    p = visit.page
    try:
        if p.locator(".math").count():
            p.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
            p.evaluate("() => MathJax.startup.promise")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # first, so that a failing page has its screenshot too
        p.screenshot(path=str(SCREENSHOTS / f"{page.replace('/', '__')}.png"), full_page=True)

        status = visit.response and visit.response.status
        assert visit.response is not None and visit.response.ok, f"{page}.html: HTTP {status}"
        # title: "<first heading> — <book title>" (math in a heading: compare the text around it)
        h1_parts = p.evaluate(r"""() => {
            const h = Array.from(document.querySelectorAll('main h1')).find(e => e.getClientRects().length);
            if (!h) return null;
            const parts = [];
            const walk = n => { for (const c of n.childNodes) {
                if (c.nodeType === 3) parts.push(c.textContent);
                else if (c.nodeType === 1 && c.matches('.math, mjx-container')) parts.push('\u0000');
                else if (c.nodeType === 1 && !c.matches('.headerlink')) walk(c); } };
            walk(h);
            return parts.join('').split('\u0000').map(t => t.trim()).filter(t => t);
        }""")
        title = p.title()
        assert h1_parts, f"{page}: no visible <h1> heading"
        assert title.startswith(h1_parts[0]) and all(t in title for t in h1_parts) and " — " in title, \
            f"{page}: title {title!r} does not match its heading {h1_parts!r}"
        if re.search(r"\\\(|\$", title):
            warnings.warn(f"{page}: the title shows TeX in the browser tab: {title!r}", stacklevel=1)
        assert not re.search(r"\b(404|not found)\b", title, re.I), f"{page}: suspicious title {title!r}"

        # figures: every <img> decoded with a non-zero natural width
        images = p.evaluate("""async () => {
            const imgs = Array.from(document.images);
            await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }));
            return imgs.map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth}));
        }""")
        broken = [i["src"] for i in images if not i["w"]]
        assert not broken, f"{page}: images that did not load: {broken}"

        # math: wherever Sphinx emitted math, MathJax (the bundled copy) typeset it, without TeX errors
        n_math = p.locator(".math").count()
        if n_math:
            n_typeset = p.locator("mjx-container").count()
            assert n_typeset >= n_math, \
                f"{page}: {n_math} math elements but {n_typeset} mjx-container (math not typeset)"
            tex_errors = p.evaluate("() => Array.from(document.querySelectorAll('mjx-merror'))"
                                    ".map(e => e.getAttribute('data-mjx-error') || e.textContent)")
            assert not tex_errors, f"{page}: TeX errors in the math: {tex_errors}"
            assert p.evaluate("() => MathJax.version").startswith("3."), f"{page}: unexpected MathJax"
            too_wide = p.evaluate("() => Array.from(document.querySelectorAll('div.math, mjx-container[display=true]'))"
                                  ".filter(e => e.scrollWidth > e.clientWidth + 2)"
                                  ".map(e => e.textContent.slice(0, 60))")
            if too_wide:
                warnings.warn(f"{page}: display equations wider than the text column (readers must scroll): "
                              f"{too_wide}", stacklevel=1)

        # code cells and code blocks wrap within the column (book/_static/wrap-code.css), none is cut off
        too_wide_code = p.evaluate("""() => Array.from(
            document.querySelectorAll('div.cell_input pre, div.highlight pre'))
            .filter(e => !e.closest('.cell_output') && e.getClientRects().length && e.scrollWidth > e.clientWidth + 2)
            .map(e => e.textContent.slice(0, 60))""")
        assert not too_wide_code, f"{page}: code wider than its column (not wrapped): {too_wide_code}"

        # outputs fit at a laptop's width, sidebars shown: tables within the text column, printed output wrapped
        # (book/_static/outputs-fit.css); figures and readings: test_figures_not_shrunk, test_readings_without_code
        layout = _LAYOUTS[page] = measure_layout(p)
        assert layout["sidebars"][0] > 0, f"{page}: the primary sidebar is not shown at {VIEWPORT}"
        missing_css = [css for css in OUTPUT_CSS if css not in layout["sheets"]]
        assert not missing_css, f"{page}: stylesheets not loaded: {missing_css} (loaded: {layout['sheets']})"
        problems = layout_problems(page, layout)
        assert not problems["tables"], "tables wider than the text column:\n" + "\n".join(problems["tables"])
        assert not problems["pres"], "printed output not wrapped within the column:\n" + "\n".join(problems["pres"])

        # no TeX left untypeset in the text (a `|` inside $...$ in a Markdown table, an unclosed $, ...)
        raw_tex = p.evaluate(r"""() => {
            const root = document.querySelector('main') || document.body;
            const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode(n) {
                const el = n.parentElement;
                if (!el || el.closest('pre, code, mjx-container, script, style, .highlight')
                    || !el.getClientRects().length)
                    return NodeFilter.FILTER_REJECT;  // code, math, or not displayed (the theme's print-only copy)
                return /\$|\\[A-Za-z]{2,}/.test(n.textContent) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
            }});
            const out = [];
            for (let n = walker.nextNode(); n && out.length < 8; n = walker.nextNode())
                out.push(n.textContent.trim().slice(0, 100));
            return out;
        }""")
        assert not raw_tex, f"{page}: TeX shown as plain text (math not typeset): {raw_tex}"

        # no traceback / error output
        body = p.inner_text("body")
        assert "Traceback (most recent call last)" not in body, f"{page}: the page shows a Python traceback"
        n_tb = p.locator(".cell_output .traceback, .cell_output .output.error").count()
        assert n_tb == 0, f"{page}: {n_tb} error outputs in notebook cells"
        stderr = p.evaluate("() => Array.from(document.querySelectorAll('.cell_output .output.stderr'))"
                            ".map(e => e.textContent)")
        bad = [s for s in stderr if re.search(r"Traceback|\w+Error\b|Exception\b", s)]
        assert not bad, f"{page}: error messages on stderr: {[s[:300] for s in bad]}"
        noisy = [s.strip()[:200] for s in stderr if re.search(r"\w*Warning\b", s)]
        if noisy:
            warnings.warn(f"{page}: warnings printed in the book: {noisy}", stacklevel=1)

        assert not visit.errors, f"{page}: {visit.errors}"
        assert not visit.failed, f"{page}: failed requests: {visit.failed}"
        assert not visit.non_loopback(), f"{page}: requests that left the machine: {visit.non_loopback()}"
    finally:
        visit.close()


def _layout(page: str, browser_context: Any, site: str) -> dict[str, Any]:
    """The layout test_page_in_browser measured on its visit, or (a test run alone) one visit of the page here."""
    if page not in _LAYOUTS:
        visit = PageVisit(browser_context, _page_url(site, page))
        try:
            _LAYOUTS[page] = measure_layout(visit.page)
        finally:
            visit.close()
    return _LAYOUTS[page]


@slow
@pytest.mark.parametrize("page", PAGES)
def test_figures_not_shrunk(page: str, browser_context: Any, site: str) -> None:
    """Every output figure is shown at >= MIN_IMAGE_SCALE of the width it was drawn at (1366-px window, sidebars
    shown), so that its labels stay >= ~9 pt: figures are drawn at the size they are shown."""
    problems = layout_problems(page, _layout(page, browser_context, site))["images"]
    assert not problems, "output figures shown shrunk:\n" + "\n".join(problems)


@slow
@pytest.mark.parametrize("page", PAGES)
def test_readings_without_code(page: str, browser_context: Any, site: str) -> None:
    """A reading the notebook generates (``display(Markdown(...))``) is shown without the code that makes it: its
    cell is tagged ``remove-input``. A cell that also computes or draws only gets a warning."""
    problems = layout_problems(page, _layout(page, browser_context, site))
    if problems["mixed"]:
        warnings.warn("\n".join(problems["mixed"]), stacklevel=1)
    assert not problems["code"], "code cells of generated readings shown in the book:\n" + "\n".join(problems["code"])


_INJECT_BAD_OUTPUTS_JS = r"""async () => {
    const article = document.querySelector('main article.bd-article');
    const output = html => { const d = document.createElement('div'); d.className = 'cell_output docutils container';
                             d.innerHTML = html; article.appendChild(d); return d; };
    // cells that cannot wrap (as a long number or a name would be without the book's CSS)
    const cells = Array.from({length: 30}, (_, k) => `<td style="white-space: nowrap">column ${k}</td>`).join('');
    output(`<table class="dataframe"><tr>${cells}</tr></table>`);
    const canvas = document.createElement('canvas');
    canvas.width = 1200; canvas.height = 300;
    const img = document.createElement('img');
    img.src = canvas.toDataURL('image/png');
    img.style.width = '400px';
    output('').appendChild(img);
    await img.decode();
    const line = 'x'.repeat(50) + ' ' + 'y'.repeat(400);
    output(`<div class="output stream highlight-myst-ansi notranslate"><div class="highlight">`
           + `<pre style="white-space: pre">${line}</pre></div></div>`);
    output(`<div class="output stream highlight-myst-ansi notranslate"><div class="highlight">`
           + `<pre>${line} (no inline style: wrapped by the book's CSS)</pre></div></div>`);
    const cell = document.createElement('div');
    cell.className = 'cell docutils container';
    cell.innerHTML = '<div class="cell_input docutils container"><div class="highlight-ipython3 notranslate">'
        + '<div class="highlight"><pre># injected reading\ndisplay(Markdown(f"**bad**"))</pre></div></div></div>';
    article.appendChild(cell);
    const mixed = cell.cloneNode(true);
    mixed.querySelector('pre').textContent = '# injected figure\nplt.plot([0, 1])\ndisplay(Markdown("**ok**"))';
    article.appendChild(mixed);
}"""


@slow
def test_layout_checks_catch_bad_outputs(browser_context: Any, site: str) -> None:
    """The layout checks fail on a page given a 30-column table, a 1200-px figure shown 400 px wide, an unwrapped
    printed line and a visible ``display(Markdown(`` reading's input (injected into a built page; a cell that also
    draws is only warned about), and the book's CSS wraps a long printed line that has no style of its own."""
    page = next(p for p in PAGES if p.startswith("notebooks/"))
    visit = PageVisit(browser_context, _page_url(site, page))
    try:
        before = layout_problems(page, measure_layout(visit.page))
        visit.page.evaluate(_INJECT_BAD_OUTPUTS_JS)
        after = layout_problems(page, measure_layout(visit.page))
    finally:
        visit.close()
    new = {check: [m for m in after[check] if m not in before[check]] for check in after}
    assert len(new["tables"]) == 1 and "a table of 30 columns (cell output)" in new["tables"][0], new["tables"]
    assert len(new["images"]) == 1 and "shown 400 px wide for 1200 px drawn, ratio 0.33" in new["images"][0], \
        new["images"]
    assert len(new["pres"]) == 1 and "white-space: pre)" in new["pres"][0], \
        f"only the line with white-space: pre should scroll: {new['pres']}"
    assert len(new["code"]) == 1 and "'# injected reading'" in new["code"][0], new["code"]
    assert len(new["mixed"]) == 1 and "'# injected figure'" in new["mixed"][0], new["mixed"]


# ----------------------------------------------------------------------------- navigation


@slow
def test_sidebar_reaches_every_page(browser_context: Any, site: str) -> None:
    """Start at index.html and follow the primary sidebar's links, page by page, until nothing new appears."""
    base_path = urlparse(site).path
    start = urljoin(site, "index.html")
    seen: set[str] = set()
    queue = [start]
    reached: set[str] = set()
    page = browser_context.new_page()
    # the sidebar is static HTML: skip scripts, styles, fonts and images here (the per-page test loads them all)
    page.route("**/*", lambda route: route.abort() if route.request.resource_type in
               ("script", "stylesheet", "font", "image") else route.continue_())
    try:
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = page.goto(url, wait_until="networkidle" if url == start else "domcontentloaded")
            assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
            reached.add(urlparse(page.url).path[len(base_path):].removesuffix(".html"))
            for href in page.eval_on_selector_all("nav.bd-docs-nav a[href]", "els => els.map(e => e.href)"):
                target = urldefrag(href).url
                if target.startswith(site) and target.endswith(".html") and target not in seen:
                    queue.append(target)
            assert len(seen) < 200, "navigation loop: more than 200 pages reached"
    finally:
        page.close()
    missing = [p for p in PAGES if p not in reached]
    assert not missing, f"pages of _toc.yml not reachable through the sidebar from index.html: {missing}"
