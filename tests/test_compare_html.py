"""``report.html`` of gaussiansr-compare: its figures against results.csv, gaps, atomic writing, the demo's
report, and the page itself in headless Chromium (Debian's chromium + chromium-driver through Selenium;
those tests skip with one line where either is missing).

The tiny run: two 40x44 / 40x40 crops of scikit-image photos, an untrained tiny GaussianSR, a tiny
untrained EDSR x2 (a fixed-scale model, so it has no output at x3: a gap) and bicubic, at x2 and x3.
"""

import contextlib
import copy
import csv
import io
import os
import shutil
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from skimage import data

from gaussiansr_arch import demo
from gaussiansr_arch.toolkit import compare_html
from gaussiansr_arch.tools import compare

import train_helpers as th
from conftest import TINY_GAUSSIANSR_OPT

CHROMIUM = os.environ.get('GAUSSIANSR_CHROMIUM', '/usr/bin/chromium')
CHROMEDRIVER = os.environ.get('GAUSSIANSR_CHROMEDRIVER', '/usr/bin/chromedriver')
# The 100-image x 3-scale page must be loaded and its script done within this (seconds, a shared 2-core machine).
LARGE_PAGE_LOAD_BOUND_S = 15.0
EDSR_OPT = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """The tiny compare run with its report; ``stderr`` = what the tool printed."""
    root = tmp_path_factory.mktemp('html')
    hr = root / 'Tiny'
    hr.mkdir()
    cv2.imwrite(str(hr / 'astro.png'), data.astronaut()[90:130, 170:214, ::-1])
    cv2.imwrite(str(hr / 'coffee.png'), data.coffee()[60:100, 120:160, ::-1])
    torch.manual_seed(0)
    net = build_network(copy.deepcopy(TINY_GAUSSIANSR_OPT)).eval()
    torch.save({'params': net.state_dict(), 'network_g': copy.deepcopy(TINY_GAUSSIANSR_OPT)}, root / 'tiny.pth')
    edsr = build_network(copy.deepcopy(EDSR_OPT))
    torch.save({'params': edsr.state_dict(), 'network_g': EDSR_OPT}, root / 'edsr.pth')
    out = root / 'cmp'
    argv = ['--model', f'tiny={root / "tiny.pth"}', '--model', f'EDSR={root / "edsr.pth"}', '--model', 'bicubic']
    argv += ['--hr', str(hr), '--scales', '2', '3', '-o', str(out), '--quiet']
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results = compare.run(argv)
    return SimpleNamespace(root=root, hr=hr, out=out, argv=argv, results=results, stderr=err.getvalue())


class _Cells(HTMLParser):
    """Every table cell of the page: (table id, attributes, text)."""

    def __init__(self):
        super().__init__()
        self.cells, self.table, self.cell, self.imgs, self.gaps = [], None, None, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'table':
            self.table = attrs.get('id')
        elif tag == 'td':
            self.cell = [self.table, attrs, '']
        elif tag == 'img':
            self.imgs.append(attrs)
        elif tag == 'div' and 'gap' in attrs.get('class', '').split():
            self.gaps.append(attrs.get('title'))

    def handle_data(self, text):
        if self.cell is not None:
            self.cell[2] += text

    def handle_endtag(self, tag):
        if tag == 'td' and self.cell is not None:
            self.cells.append(tuple(self.cell))
            self.cell = None


def _parse(path: Path) -> _Cells:
    parser = _Cells()
    parser.feed(path.read_text(encoding='utf-8'))
    return parser


# ---------------------------------------------------------------------------- the page's content
def test_page_figures_equal_the_csv(run):
    rows = list(csv.DictReader((run.out / 'results.csv').open()))
    page = _parse(run.out / 'report.html')
    shown = {
        (a['data-model'], a['data-dataset'], a['data-scale'], a['data-metric']): text
        for table, a, text in page.cells
        if table == 'summary' and 'data-model' in a
    }
    assert len(rows) == 6 and len(shown) == 12
    for row in rows:
        for metric in ('psnr', 'ssim'):
            assert shown[(row['model'], row['dataset'], row['scale'], metric)] == row[metric], (row, metric)
    # the per-image figures average to the CSV's (each rounded to 4 decimals)
    per_image = [(a, text) for table, a, text in page.cells if table == 'per-image']
    assert len(per_image) == 4 * (3 + 2 * 3)  # 2 images x 2 scales; dataset, scale, image + PSNR, SSIM of 3 models
    cells = [[text for _, text in per_image[i : i + 9]] for i in range(0, len(per_image), 9)]
    for row in rows:
        k = ['tiny', 'EDSR', 'Bicubic'].index(row['model'])
        values = [c[3 + k] for c in cells if c[0] == row['dataset'] and c[1] == f'x{row["scale"]}']
        if row['psnr'] == 'nan':
            assert values == ['-', '-']
        else:
            assert np.mean([float(v) for v in values]) == pytest.approx(float(row['psnr']), abs=1e-4)
    text = (run.out / 'report.html').read_text()
    assert '2 images at 2 scales (x2, x3) in 1 dataset' in text
    assert 'Tiny: PSNR and SSIM on the Y channel' in text and '2 px at x2, 3 px at x3' in text
    assert 'MATLAB-style bicubic at x2, x3' in text


def test_page_images_exist_and_gap_is_shown_and_named(run):
    page = _parse(run.out / 'report.html')
    sources = [a['data-src'] for a in page.imgs if 'data-src' in a]
    # 4 views x (HR, bicubic, tiny) + 2 views x EDSR at x2; the bicubic model shares the bicubic panel
    assert len(sources) == 4 * 3 + 2
    for rel in sources + [a['data-err'] for a in page.imgs if 'data-err' in a]:
        assert (run.out / rel).is_file(), rel
    crops = [a['src'] for a in page.imgs if a.get('src', '').startswith('crops/')]
    assert crops and all((run.out / c).is_file() for c in crops)
    assert page.gaps == ['skipped: fixed-scale model (x2 only)'] * 2
    lines = [line for line in run.stderr.splitlines() if 'report.html' in line]
    assert lines == [
        'report.html: no output of EDSR for Tiny x3 on 2 images (astro, coffee): skipped: fixed-scale model (x2 only)'
    ]
    assert not th.hidden_or_tmp(run.out)


def test_html_flag_and_existing_report(run, tmp_path, capsys):
    base = ['--model', 'bicubic', '--hr', str(run.hr)]
    base += ['--scales', '2', '--quiet', '--max-images', '1']
    compare.run(base + ['-o', str(tmp_path / 'a'), '--no-html'])
    assert not (tmp_path / 'a' / 'report.html').exists() and (tmp_path / 'a' / 'crops').is_dir()
    compare.run(base + ['-o', str(tmp_path / 'b'), '--crops', '0'])  # no images written: no report by default
    assert not (tmp_path / 'b' / 'report.html').exists()
    compare.run(base + ['-o', str(tmp_path / 'c'), '--crops', '0', '--html'])
    assert (tmp_path / 'c' / 'report.html').is_file() and not (tmp_path / 'c' / 'crops').exists()
    # an existing report without --force: one line naming it, before any work
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'report.html').write_text('precious')
    message = th.tool_error(capsys, compare.run, base + ['-o', str(tmp_path / 'd')])
    assert message == f'error: output {tmp_path / "d" / "report.html"} exists; pass --force to overwrite it'
    assert (tmp_path / 'd' / 'report.html').read_text() == 'precious'


def test_report_write_is_atomic(run, tmp_path, capsys, monkeypatch):
    """A full disk while report.html is flushed: one line naming it, the previous report untouched, no .tmp."""
    out = tmp_path / 'r'
    argv = ['--model', 'bicubic', '--hr', str(run.hr), '--scales', '2', '--quiet', '-o', str(out)]
    compare.run(argv)
    before = (out / 'report.html').read_bytes()
    real_fsync = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.report.html.'):
            raise OSError(28, os.strerror(28))
        return real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    message = th.tool_error(capsys, compare.run, argv + ['--force', '--max-images', '1'], progress=True)
    assert message == f'error: cannot write {out / "report.html"}: No space left on device'
    assert (out / 'report.html').read_bytes() == before and not th.hidden_or_tmp(out)


def test_output_of_wrong_size_is_a_gap(tmp_path, capsys):
    """Bad input to the report itself (an output that is not an image of the HR size): a gap and one line."""
    report = compare_html.HtmlReport(str(tmp_path), force=False)
    ds = compare.DatasetEntry(name='D', hr=str(tmp_path), scales=[2.0])
    hr = data.astronaut()[:24, :24].copy()
    lr = hr[::2, ::2].copy()
    models = [SimpleNamespace(name=n, kind='arbitrary', params=1) for n in ('good', 'bad')]
    report.add(ds, 2.0, 2, 'x/img.png', lr, hr, {'good': (hr.copy(), 99.0, 1.0), 'bad': (hr[:10], 5.0, 0.1)})
    results = {(m.name, 'D', 2.0): compare.Result(psnr=[1.0], ssim=[0.5]) for m in models}
    report.write(models, [ds], results)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'report.html: no output of bad for D x2 on 1 image (img): output (10, 24, 3) is not a uint8 image of the '
        'HR size (24, 24, 3)'
    ]
    page = _parse(tmp_path / 'report.html')
    assert len(page.gaps) == 1 and page.gaps[0].startswith('output (10, 24, 3)')


def test_demo_compare_step_writes_the_report_and_its_summary(run, tmp_path, capsys):
    """The demo's step 4 (its compare call, without the training) on a folder laid out as the demo
    writes it (``<data>/heldout/HR``) writes report.html, prints where it is, and the closing table
    reads the results under the name compare gave the set (a lookup under 'HR' once crashed the demo)."""
    opt = tmp_path / 'run.yml'
    opt.write_text(yaml.safe_dump({'network_g': copy.deepcopy(TINY_GAUSSIANSR_OPT)}))
    heldout = tmp_path / 'data' / 'heldout' / 'HR'
    shutil.copytree(run.hr, heldout)
    out = tmp_path / 'compare'
    results = demo.compare_heldout(str(run.root / 'tiny.pth'), str(opt), str(heldout), str(out))
    assert (demo.MODEL_LABEL, 'heldout', 3.5) in results
    assert f'interactive comparison report (open it in a browser): {out / "report.html"}' in capsys.readouterr().out
    text = (out / 'report.html').read_text()
    assert demo.MODEL_LABEL in text and '(x2, x3.5, x4)' in text
    rows, wins = demo.heldout_summary(results, str(heldout))
    assert [row.split(' |')[0] for row in rows] == ['| x2', '| x3.5', '| x4']
    bicubic, ours = (float(np.mean(results[(m, 'heldout', 4.0)].psnr)) for m in ('Bicubic', demo.MODEL_LABEL))
    assert rows[2].endswith(f'| {ours - bicubic:+.2f} |')
    assert wins == all(
        np.mean(results[(demo.MODEL_LABEL, 'heldout', s)].psnr) > np.mean(results[('Bicubic', 'heldout', s)].psnr)
        for s in demo.VAL_SCALES
    )


# ---------------------------------------------------------------------------- in headless Chromium
def _driver_available() -> None:
    """Skip (one line saying why) without Selenium, Chromium or chromedriver."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip('selenium is not installed (pip install -e .[test])')
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f'{path} is absent (apt-get install chromium chromium-driver; scripts/setup_env.sh does it)')


def _driver(javascript: bool = True):
    """Headless Debian Chromium through Selenium and the system chromedriver; skips (one line) without them."""
    _driver_available()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix='gsr-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
        f'--user-data-dir={profile}',
        '--window-size=1280,1000',
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option('prefs', {'profile.managed_default_content_settings.javascript': 2})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as err:  # noqa: BLE001  (any start failure: one line, then skip)
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f'headless Chromium does not start: {str(err).splitlines()[0]}')
    driver.set_page_load_timeout(60)
    driver._profile_dir = profile
    return driver


@contextlib.contextmanager
def _browser(javascript: bool = True):
    driver = _driver(javascript)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(driver._profile_dir, ignore_errors=True)


def _wait(driver, script: str, *args, timeout: float = 10.0):
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value or time.monotonic() > end:
            return value
        time.sleep(0.05)


def _transforms(driver, section_id: str) -> list[str]:
    return driver.execute_script(
        'return Array.from(document.querySelectorAll(arguments[0])).map(i => i.style.transform)',
        f'#{section_id} .grid .vp img',
    )


def test_browser_report_interactions(run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with _browser() as d:
        d.get((run.out / 'report.html').as_uri())
        assert _wait(d, 'return window.__reportReady === true'), 'the page script did not finish'
        assert d.execute_script('return document.documentElement.classList.contains("js")')
        # every panel image of every section loads once its section has been in view
        sections = d.find_elements(By.CSS_SELECTOR, 'section.item')
        assert len(sections) == 4
        loaded = 'return Array.from(document.querySelectorAll(arguments[0])).map(i => i.complete && i.naturalWidth > 0)'
        for sec in sections:  # as a reader scrolls: each section's images load once it is near the view
            d.execute_script('arguments[0].scrollIntoView()', sec)
            sec_imgs = f'#{sec.get_attribute("id")} .vp img'
            _wait(d, loaded.replace('.map(', '.every('), sec_imgs)
        states = d.execute_script(loaded, '.vp img')
        assert len(states) == 14 + 4 * 2 and all(states)  # grid panels + the two swipe layers per section
        assert d.execute_script(
            'return Array.from(document.querySelectorAll(".grid .vp img"))'
            '.every(i => getComputedStyle(i).imageRendering === "pixelated")'
        )

        # zoom with the wheel in the first panel of img-0: every panel of that image follows, img-1 does not
        sec_id = 'img-0'
        d.execute_script('document.getElementById(arguments[0]).scrollIntoView()', sec_id)
        first = d.find_element(By.CSS_SELECTOR, f'#{sec_id} .grid .vp')
        before = _transforms(d, sec_id)
        ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(first, 20, 10), 0, -120).perform()
        ActionChains(d).scroll_from_origin(ScrollOrigin.from_element(first, 20, 10), 0, -120).perform()
        zoomed = _wait(d, f'return document.querySelector("#{sec_id} .zoom").textContent !== "1x"')
        assert zoomed, 'the wheel did not zoom'
        after = _transforms(d, sec_id)
        assert after != before and 'scale(1.5625)' in after[0] and len(set(after)) == 1, after
        swipe_layers = d.execute_script(
            f'return Array.from(document.querySelectorAll("#{sec_id} .swvp img")).map(i => i.style.transform)'
        )
        assert len(swipe_layers) == 2 and all(t.endswith('scale(1.5625)') for t in swipe_layers), swipe_layers
        assert set(_transforms(d, 'img-1')) <= {'', 'translate(0px, 0px) scale(1)'}
        # drag one panel: all of them pan by the same amount
        last = d.find_elements(By.CSS_SELECTOR, f'#{sec_id} .grid .vp')[-1]
        ActionChains(d).click_and_hold(last).move_by_offset(-30, -20).release().perform()
        panned = _transforms(d, sec_id)
        assert panned != after and len(set(panned)) == 1, panned
        # keyboard: '0' resets, '+' zooms
        last.send_keys('0')
        assert set(_transforms(d, sec_id)) == {'translate(0px, 0px) scale(1)'}
        last.send_keys('+')
        assert all('scale(1.25)' in t for t in _transforms(d, sec_id))

        # the swipe slider changes what is shown
        swvp = d.find_element(By.CSS_SELECTOR, f'#{sec_id} .swvp')
        last.send_keys('0')
        d.execute_script('arguments[0].scrollIntoView()', swvp)
        shot_mid = swvp.screenshot_as_png
        slider = d.find_element(By.CSS_SELECTOR, f'#{sec_id} .swr')
        slider.send_keys(Keys.HOME)
        assert d.execute_script('return arguments[0].value', slider) == '0'
        clip = d.execute_script('return document.querySelector(arguments[0]).style.clipPath', f'#{sec_id} .swtop')
        assert clip == 'inset(0px 100% 0px 0px)', clip
        shot_right = swvp.screenshot_as_png
        slider.send_keys(Keys.END)
        shot_left = swvp.screenshot_as_png
        assert len({shot_mid, shot_right, shot_left}) == 3, 'moving the slider did not change the picture'

        # |error| view: the output panels show their error maps
        d.find_element(By.CSS_SELECTOR, f'#{sec_id} .errview').click()
        srcs = d.execute_script(f'return Array.from(document.querySelectorAll("#{sec_id} .grid img")).map(i => i.src)')
        assert srcs[0].endswith('/hr.png') and all(s.endswith('_err.png') for s in srcs[1:]), srcs

        # sorting the per-image table reorders its rows; the summary marks the best per column
        table = d.find_element(By.ID, 'per-image')
        d.execute_script('arguments[0].scrollIntoView()', table)
        order = 'return Array.from(document.querySelectorAll("#per-image tbody tr")).map(r => r.dataset.open)'
        psnr = 'return Array.from(document.querySelectorAll("#per-image tbody tr")).map(r => +r.cells[3].dataset.v)'
        original = d.execute_script(order)
        header = table.find_elements(By.CSS_SELECTOR, 'thead th')[3]
        assert header.text == 'tiny PSNR'
        header.click()
        down = d.execute_script(psnr)
        assert down == sorted(down, reverse=True) and d.execute_script(order) != original
        header.click()
        up = d.execute_script(psnr)
        assert up == sorted(up) and up != down
        best = d.execute_script(
            'return Array.from(document.querySelectorAll("#summary td.best")).map(c => c.dataset.model + " " + '
            'c.dataset.scale + " " + c.dataset.metric)'
        )
        csv_rows = list(csv.DictReader((run.out / 'results.csv').open()))
        for scale in ('2', '3'):
            for metric in ('psnr', 'ssim'):
                top = max((r for r in csv_rows if r['scale'] == scale and r[metric] != 'nan'), key=lambda r: r[metric])
                assert f'{top["model"]} {scale} {metric}' in best

        # a click on a row opens that image
        row = d.find_elements(By.CSS_SELECTOR, '#per-image tbody tr')[-1]
        target = row.get_attribute('data-open')
        row.find_elements(By.TAG_NAME, 'td')[4].click()
        assert _wait(d, f'return document.getElementById("{target}").classList.contains("open")')
        top = d.execute_script(f'return document.getElementById("{target}").getBoundingClientRect().top')
        assert abs(top) < 5 and d.execute_script('return location.hash') == f'#{target}'

        d.execute_script('document.getElementById("img-0").scrollIntoView()')
        shot = tmp_path / 'report.png'
        assert d.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and shot.stat().st_size > 10_000


def test_browser_without_javascript_keeps_tables_and_crops(run):
    from selenium.webdriver.common.by import By

    with _browser(javascript=False) as d:
        d.get((run.out / 'report.html').as_uri())
        html_class = d.find_element(By.TAG_NAME, 'html').get_attribute('class') or ''
        assert 'js' not in html_class.split(), 'JavaScript ran'
        assert len(d.find_elements(By.CSS_SELECTOR, '#summary tbody tr')) == 3
        assert len(d.find_elements(By.CSS_SELECTOR, '#per-image tbody tr')) == 4
        crops = d.find_elements(By.CSS_SELECTOR, '.crops img')
        assert len(crops) == 2
        for img in crops:  # a broken image is not the crop's size
            assert img.size['height'] > 100 and img.size['width'] > 200, img.size
        assert d.find_element(By.CSS_SELECTOR, 'img.plot').size['width'] > 200


def test_browser_large_report_opens_quickly(tmp_path, monkeypatch):
    """A synthetic 100-image x 3-scale report (tiny images, bicubic + one model) opens without freezing."""
    from selenium.webdriver.common.by import By

    _driver_available()
    monkeypatch.setattr(os, 'fsync', lambda fd: None)  # 1500 small PNGs: atomic renames, no flushes (speed)
    t_build = time.monotonic()
    ds = compare.DatasetEntry(name='Urban100', hr=str(tmp_path), scales=[2.0, 3.0, 4.0])
    models = [SimpleNamespace(name='noisy', kind='arbitrary', params=10)]
    results = {('noisy', 'Urban100', s): compare.Result() for s in ds.scales}
    report = compare_html.HtmlReport(str(tmp_path / 'big'), force=False)
    rng = np.random.default_rng(0)
    base = data.astronaut()
    for s in ds.scales:
        for i in range(100):
            hr = np.ascontiguousarray(base[i : i + 24, 2 * i : 2 * i + 24])
            lr = hr[:: int(s), :: int(s)].copy()
            sr = np.clip(hr + rng.integers(-8, 9, hr.shape), 0, 255).astype(np.uint8)
            psnr, ssim = 30.0 + rng.random(), 0.9 + 0.1 * rng.random()  # only shown; not what this test checks
            results[('noisy', 'Urban100', s)].psnr.append(psnr)
            results[('noisy', 'Urban100', s)].ssim.append(ssim)
            report.add(ds, s, int(s), f'img{i:03d}.png', lr, hr, {'noisy': (sr, psnr, ssim)})
    page = Path(report.write(models, [ds], results))
    assert '100 images at 3 scales (x2, x3, x4)' in page.read_text()
    print(f'built the 300-view report in {time.monotonic() - t_build:.1f} s')

    with _browser() as d:
        t0 = time.monotonic()
        d.get(page.as_uri())
        ready = _wait(d, 'return window.__reportReady === true', timeout=LARGE_PAGE_LOAD_BOUND_S)
        elapsed = time.monotonic() - t0
        assert ready and elapsed < LARGE_PAGE_LOAD_BOUND_S, f'page took {elapsed:.1f} s'
        print(f'300-view report loaded and ready in {elapsed:.2f} s')
        assert len(d.find_elements(By.CSS_SELECTOR, 'section.item')) == 300
        # lazy: only the sections near the view have loaded their images
        requested = 'return document.querySelectorAll(".grid img[src]").length'
        assert d.execute_script(requested) < 3 * 30
        # still responsive: sorting 300 rows and jumping to the last image take well under a second each
        t1 = time.monotonic()
        d.find_elements(By.CSS_SELECTOR, '#per-image thead th')[3].click()
        d.execute_script('document.getElementById("img-299").scrollIntoView()')
        assert _wait(d, 'return document.querySelectorAll("#img-299 .grid img[src]").length === 3')
        assert time.monotonic() - t1 < 5.0


def test_demo_heldout_photos_are_scored_as_the_benchmark_protocol_it_prints(tmp_path, monkeypatch):
    """The demo says 'Y, crop ceil(s)' for the held-out photos: compare must give that folder the
    benchmark family (a folder named DIV2K... gets DIV2K's RGB, crop + 6)."""
    from gaussiansr_arch.data.protocol import dataset_family, get_protocol
    from gaussiansr_arch.toolkit.comparison import default_dataset_name

    monkeypatch.setattr(demo, 'VAL_PHOTOS', ('chelsea',))
    monkeypatch.setattr(demo, 'TRAIN_PHOTOS', ('coffee',))
    _, val_dir = demo.write_photos(str(tmp_path))
    assert os.listdir(val_dir) == ['chelsea.png']
    family = dataset_family(default_dataset_name(val_dir))
    assert family == 'benchmark'
    assert get_protocol('liif').test_y_channel(family) is True
