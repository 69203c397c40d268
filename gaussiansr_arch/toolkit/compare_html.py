"""``report.html`` of ``gaussiansr-compare``: one self-contained page to look at a comparison.

The page opens from disk with no server and no network: its script and style are inline, the
PSNR-vs-scale plot is inlined as a data URI, and the images it shows are PNGs in one folder next to
it, ``report_files/`` (HR, bicubic, every model's output and their per-pixel absolute error, per
dataset x scale x image). ``crops/*.png`` (the static crops ``compare`` writes) are shown as they
are. The page holds:

- the protocol (how PSNR/SSIM were measured, per dataset) and how many images and scales it holds;
- the metrics per dataset x scale (the figures of ``results.csv``, same rounding) with the best
  per column marked, and the metrics per image; both sortable, a click on an image row opens it;
- the PSNR-vs-scale plot and the static crops;
- for each dataset x scale x image: HR, bicubic and every model in a grid with synchronised zoom
  and pan (wheel, drag, keys; nearest-neighbour magnification), a |error| view, and a swipe slider
  between any two panels. Images load only when their section comes near the view.

Tables, plot and crops are plain HTML: they are there with JavaScript disabled too. Every file is
written atomically (the PNGs as they are made, ``report.html`` last), so the page never refers to a
half-written image. A model without an output for an image (a fixed-scale model at another scale,
an output of the wrong size) leaves a marked gap on the page, and :meth:`HtmlReport.write` prints
one line per model x dataset x scale saying which images lack it.
"""

import base64
import functools
import html
import math
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np

from gaussiansr_arch.toolkit.comparison import bicubic_upscale, crop_border_for, metrics
from gaussiansr_arch.toolkit.outputs import (
    check_output_dir,
    check_output_free,
    format_scale,
    save_image,
    write_text_atomic,
)

REPORT_NAME = 'report.html'
FILES_DIR = 'report_files'
# |SR - HR| (mean over RGB, 0..255) mapped onto the colour map up to this many grey levels;
# larger errors saturate. Stated on the page.
ERROR_RANGE = 32.0


@dataclass
class _Panel:
    key: str  # 'hr', 'bicubic', 'm0', 'm1' ...
    label: str
    src: str = ''  # relative path of the image ('' = missing)
    err: str = ''  # relative path of its |error| map
    psnr: float | None = None
    ssim: float | None = None
    missing: str = ''  # why there is no output


@dataclass
class _Item:
    index: int
    dataset: str
    scale: float
    stem: str
    hr_size: tuple
    lr_size: tuple
    outputs: dict  # model name -> (relative image path, relative error path, psnr, ssim) or str (why missing)
    bicubic: tuple  # (relative image path, relative error path, psnr, ssim)
    hr: str
    crop: str | None = None
    panels: list = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._') or 'x'


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _mean(values) -> float:
    return float(np.mean(values)) if values else float('nan')


@functools.cache
def _error_lut() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps['magma'](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def error_map(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """|sr - hr| averaged over RGB, as an RGB heat map (magma; ERROR_RANGE grey levels and more = brightest)."""
    err = np.abs(sr.astype(np.float32) - hr.astype(np.float32)).mean(axis=2)
    idx = np.clip(np.rint(err / ERROR_RANGE * 255), 0, 255).astype(np.intp)
    return _error_lut()[idx]


class HtmlReport:
    """Collects a comparison image by image (writing its PNGs at once) and writes ``report.html``.

    ``compare`` makes one before any slow work (so an existing ``report.html`` without ``--force``
    fails at once), calls :meth:`add` for each dataset x scale x image with the outputs of the
    models that ran, and :meth:`write` at the end.
    """

    def __init__(self, out_dir: str, force: bool):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, REPORT_NAME)
        check_output_free(self.path, force)
        check_output_dir(os.path.join(out_dir, FILES_DIR))
        self.items: list[_Item] = []

    # ------------------------------------------------------------------ collecting
    def _save(self, rel: str, img: np.ndarray) -> str:
        save_image(os.path.join(self.out_dir, rel), img)
        return rel

    def add(self, ds, scale: float, border: int, path: str, lr, hr, outputs: dict, crop: str | None = None) -> None:
        """One image of dataset ``ds`` at ``scale``: ``outputs`` = {model name: (sr, psnr, ssim)} of the
        models that produced it (uint8 RGB of HR's size); ``crop`` = the static crop PNG, if any."""
        index = len(self.items)
        stem = os.path.splitext(os.path.basename(path))[0]
        folder = f'{FILES_DIR}/{_safe(ds.name)}/x{format_scale(scale)}/{index:05d}_{_safe(stem)}'
        hr_rel = self._save(f'{folder}/hr.png', hr)
        bic = bicubic_upscale(lr, hr.shape[:2])
        b_psnr, b_ssim = metrics(bic, hr, border, ds.test_y_channel)
        bicubic = (
            self._save(f'{folder}/bicubic.png', bic),
            self._save(f'{folder}/bicubic_err.png', error_map(bic, hr)),
            b_psnr,
            b_ssim,
        )
        saved = {}
        for k, (name, value) in enumerate(outputs.items()):
            if value is None:
                saved[name] = 'no output'
                continue
            sr, psnr, ssim = value
            if not isinstance(sr, np.ndarray) or sr.shape != hr.shape or sr.dtype != np.uint8:
                got = getattr(sr, 'shape', type(sr).__name__)
                saved[name] = f'output {got} is not a uint8 image of the HR size {hr.shape}'
                continue
            if np.array_equal(sr, bic):  # the bicubic baseline as a model: its files are there already
                saved[name] = (bicubic[0], bicubic[1], float(psnr), float(ssim))
                continue
            saved[name] = (
                self._save(f'{folder}/m{k}.png', sr),
                self._save(f'{folder}/m{k}_err.png', error_map(sr, hr)),
                float(psnr),
                float(ssim),
            )
        crop_rel = None
        if crop and os.path.isfile(crop):
            crop_rel = os.path.relpath(crop, self.out_dir).replace(os.sep, '/')
        self.items.append(
            _Item(
                index=index,
                dataset=ds.name,
                scale=float(scale),
                stem=stem,
                hr_size=tuple(hr.shape[:2]),
                lr_size=tuple(lr.shape[:2]),
                outputs=saved,
                bicubic=bicubic,
                hr=hr_rel,
                crop=crop_rel,
            )
        )

    # ------------------------------------------------------------------ writing
    def write(self, models, datasets, results) -> str:
        """Write ``report.html`` (atomically); print one line per model x dataset x scale with gaps."""
        gaps = {}
        for item in self.items:
            item.panels = [
                _Panel('hr', 'HR', src=item.hr),
                _Panel('bicubic', 'Bicubic', *item.bicubic),
            ]
            for k, m in enumerate(models):
                value = item.outputs.get(m.name)
                if m.kind == 'bicubic' and not isinstance(value, str):
                    continue  # the bicubic panel is there already
                if isinstance(value, tuple):
                    item.panels.append(_Panel(f'm{k}', m.name, *value))
                    continue
                note = results[(m.name, item.dataset, item.scale)].note if value is None else value
                reason = note or 'no output'
                item.panels.append(_Panel(f'm{k}', m.name, missing=reason))
                gaps.setdefault((m.name, item.dataset, item.scale, reason), []).append(item.stem)
        page = render_page(self.items, models, datasets, results, self._plot_uri())
        write_text_atomic(self.path, page)
        for (name, dataset, scale, reason), stems in gaps.items():
            shown = ', '.join(stems[:5]) + (f' and {len(stems) - 5} more' if len(stems) > 5 else '')
            print(
                f'{REPORT_NAME}: no output of {name} for {dataset} x{format_scale(scale)} on '
                f'{len(stems)} image{"s" if len(stems) != 1 else ""} ({shown}): {reason}',
                file=sys.stderr,
            )
        return self.path

    def _plot_uri(self) -> str:
        plot = os.path.join(self.out_dir, 'psnr_vs_scale.png')
        if not os.path.isfile(plot):
            return ''
        with open(plot, 'rb') as f:
            return 'data:image/png;base64,' + base64.b64encode(f.read()).decode('ascii')


# ---------------------------------------------------------------------------- page
def _num(value: float | None, digits: int = 4) -> str:
    return '' if value is None or not math.isfinite(value) else f'{value:.{digits}f}'


def protocol_lines(datasets) -> list[str]:
    """One sentence per dataset: channel, crop border per scale, how the LR is made (its protocol's rule)."""
    lines = []
    for ds in datasets:
        borders = ', '.join(f'{crop_border_for(ds, s)} px at x{format_scale(s)}' for s in ds.scales)
        channel = 'the Y channel (BT.601, test_y_channel)' if ds.test_y_channel else 'RGB'
        proto = _protocol(ds)
        if ds.lr:
            lr = f'LR read from {ds.lr} (HR cropped to round(LR size x scale))'
        else:
            kernels = {}
            for s in ds.scales:
                kind = proto.lr_degradation(s) if proto is not None else 'matlab'
                kernels.setdefault('PIL' if kind == 'pil' else 'MATLAB-style', []).append(f'x{format_scale(s)}')
            how = '; '.join(f'{k} bicubic at {", ".join(v)}' for k, v in kernels.items())
            lr = f'LR made from the HR (cropped to floor(H/s) x s), rounded to uint8: {how}'
        extra = f' Protocol {proto.name}: {proto.title}.' if proto is not None else ''
        lines.append(
            f'{ds.name}: PSNR and SSIM on {channel} of uint8 images, crop border {ds.crop_border!s} '
            f'({borders}); {lr}.{extra}'
        )
    return lines


def _protocol(ds):
    """The dataset's :class:`~gaussiansr_arch.data.protocol.Protocol`, or None where it names none."""
    name = getattr(ds, 'protocol', None)
    if not name:
        return None
    from gaussiansr_arch.data.protocol import get_protocol

    try:
        return get_protocol(name)
    except ValueError:
        return None


def _summary_table(models, datasets, results) -> str:
    """Rows: models; columns: PSNR and SSIM per dataset x scale, params, s/img; the CSV's figures."""
    cols = [(ds, s) for ds in datasets for s in ds.scales]
    head = ['<th data-type="text">model</th>', '<th data-type="num">params</th>']
    head.append('<th data-type="num" data-best="min">s/img</th>')
    for ds, s in cols:
        for metric in ('PSNR', 'SSIM'):
            head.append(f'<th data-type="num" data-best="max">{_esc(ds.name)} x{format_scale(s)} {metric}</th>')
    rows = []
    for m in models:
        secs = [t for ds, s in cols for t in results[(m.name, ds.name, s)].seconds]
        cells = [
            f'<td data-v="{_esc(m.name)}">{_esc(m.name)}</td>',
            f'<td data-v="{m.params}" data-metric="params">{m.params}</td>',
            f'<td data-v="{_num(_mean(secs))}">{_num(_mean(secs))}</td>',
        ]
        for ds, s in cols:
            r = results[(m.name, ds.name, s)]
            for metric, values in (('psnr', r.psnr), ('ssim', r.ssim)):
                text = f'{_mean(values):.4f}'  # exactly as results.csv writes it
                title = f' title="{_esc(r.note)}"' if r.note else ''
                cells.append(
                    f'<td data-v="{text}" data-model="{_esc(m.name)}" data-dataset="{_esc(ds.name)}" '
                    f'data-scale="{format_scale(s)}" data-metric="{metric}"{title}>{text}</td>'
                )
        rows.append('<tr>' + ''.join(cells) + '</tr>')
    return (
        '<table class="metrics sortable mark-best" id="summary"><thead><tr>'
        + ''.join(head)
        + '</tr></thead><tbody>'
        + ''.join(rows)
        + '</tbody></table>'
    )


def _per_image_table(items, models) -> str:
    """Rows: dataset x scale x image; columns: PSNR and SSIM of every model; a click opens the image."""
    head = ['<th data-type="text">dataset</th>', '<th data-type="num">scale</th>', '<th data-type="text">image</th>']
    for metric in ('PSNR', 'SSIM'):
        for m in models:
            head.append(f'<th data-type="num">{_esc(m.name)} {metric}</th>')
    rows = []
    for item in items:
        values = {}
        for m in models:
            v = item.outputs.get(m.name)
            values[m.name] = (v[2], v[3]) if isinstance(v, tuple) else (None, None)
        cells = [
            f'<td data-v="{_esc(item.dataset)}">{_esc(item.dataset)}</td>',
            f'<td data-v="{item.scale:g}">x{format_scale(item.scale)}</td>',
            f'<td data-v="{_esc(item.stem)}"><a href="#{_item_id(item)}">{_esc(item.stem)}</a></td>',
        ]
        for j in (0, 1):
            finite = [values[m.name][j] for m in models if values[m.name][j] is not None]
            best = max(finite) if finite else None
            for m in models:
                v = values[m.name][j]
                mark = ' class="best"' if v is not None and len(finite) > 1 and v == best else ''
                text = _num(v) if v is not None else '-'
                cells.append(f'<td data-v="{_num(v)}"{mark}>{text}</td>')
        rows.append(f'<tr data-open="{_item_id(item)}">' + ''.join(cells) + '</tr>')
    return (
        '<table class="metrics sortable" id="per-image"><thead><tr>'
        + ''.join(head)
        + '</tr></thead><tbody>'
        + ''.join(rows)
        + '</tbody></table>'
    )


def _item_id(item: _Item) -> str:
    return f'img-{item.index}'


def _viewer(item: _Item) -> str:
    h, w = item.hr_size
    panels, options = [], []
    for p in item.panels:
        label = p.label
        if p.psnr is not None:
            label += f' {p.psnr:.2f} dB / {p.ssim:.4f}'
        if p.missing:
            body = f'<div class="vp gap" title="{_esc(p.missing)}">no output: {_esc(p.missing)}</div>'
        else:
            err = f' data-err="{_esc(p.err)}"' if p.err else ''
            body = f'<div class="vp" tabindex="0"><img alt="{_esc(p.label)}" data-src="{_esc(p.src)}"{err}></div>'
            options.append((p.src, p.label))
            if p.err:
                options.append((p.err, f'|error| {p.label}'))
        panels.append(
            f'<figure class="panel{" missing" if p.missing else ""}" data-key="{p.key}">{body}'
            f'<figcaption>{_esc(label)}</figcaption></figure>'
        )
    # left: the first model's output (else bicubic), right: HR
    outs = [i for i, (_, lab) in enumerate(options) if not lab.startswith('|error|') and lab != 'HR']
    a_default = next((i for i in outs if options[i][1] != 'Bicubic'), outs[0] if outs else 0)
    b_default = 0
    opts_a = ''.join(
        f'<option value="{_esc(src)}"{" selected" if i == a_default else ""}>{_esc(lab)}</option>'
        for i, (src, lab) in enumerate(options)
    )
    opts_b = ''.join(
        f'<option value="{_esc(src)}"{" selected" if i == b_default else ""}>{_esc(lab)}</option>'
        for i, (src, lab) in enumerate(options)
    )
    crop = (
        f'<p class="static">Static crop: <img class="crop" loading="lazy" src="{_esc(item.crop)}" alt="crop"></p>'
        if item.crop
        else ''
    )
    lh, lw = item.lr_size
    return (
        f'<section class="item" id="{_item_id(item)}" style="--ar:{w}/{h}">'
        f'<h3>{_esc(item.dataset)} · {_esc(item.stem)} · x{format_scale(item.scale)}'
        f' <small>HR {h}x{w}, LR {lh}x{lw}</small></h3>{crop}'
        '<div class="bar js-only"><button type="button" data-act="in" title="zoom in (+)">+</button>'
        '<button type="button" data-act="out" title="zoom out (-)">&minus;</button>'
        '<button type="button" data-act="fit" title="fit (0)">fit</button>'
        '<label><input type="checkbox" class="errview"> |error| view</label>'
        ' <span class="zoom">1x</span></div>'
        f'<div class="grid">{"".join(panels)}</div>'
        '<div class="swipe js-only"><div class="swipectl">swipe: left <select class="swa">'
        f'{opts_a}</select> right <select class="swb">{opts_b}</select>'
        ' <input type="range" class="swr" min="0" max="100" value="50" aria-label="swipe position"></div>'
        '<div class="vp swvp" tabindex="0"><img class="swb-img" alt="right"><div class="swtop">'
        '<img class="swa-img" alt="left"></div><div class="swline"></div></div></div>'
        '</section>'
    )


def render_page(items, models, datasets, results, plot_uri: str = '') -> str:
    """The whole page as one string (see the module docstring)."""
    n_images = len({(it.dataset, it.stem) for it in items})
    scales = sorted({it.scale for it in items} | {s for ds in datasets for s in ds.scales})
    protocol = ''.join(f'<li>{_esc(line)}</li>' for line in protocol_lines(datasets))
    notes = [
        f'<li>{_esc(m.name)} on {_esc(ds.name)} x{format_scale(s)}: {_esc(results[(m.name, ds.name, s)].note)}</li>'
        for m in models
        for ds in datasets
        for s in ds.scales
        if results[(m.name, ds.name, s)].note
    ]
    gaps = sum(1 for it in items for p in it.panels if p.missing)
    counts = (
        f'{n_images} image{"s" if n_images != 1 else ""} at {len(scales)} scale{"s" if len(scales) != 1 else ""} '
        f'({", ".join("x" + format_scale(s) for s in scales)}) in {len(datasets)} dataset'
        f'{"s" if len(datasets) != 1 else ""}: {len(items)} views of HR, bicubic and {len(models)} model'
        f'{"s" if len(models) != 1 else ""} ({", ".join(m.name for m in models)})'
        + (f'; {gaps} missing output{"s" if gaps != 1 else ""} shown as gaps' if gaps else '')
        + '.'
    )
    plot = f'<img class="plot" src="{plot_uri}" alt="PSNR against scale">' if plot_uri else '<p>(no plot)</p>'
    crops = ''.join(
        f'<figure><img loading="lazy" src="{_esc(it.crop)}" alt="crop {_esc(it.stem)}">'
        f'<figcaption>{_esc(it.dataset)} {_esc(it.stem)} x{format_scale(it.scale)}</figcaption></figure>'
        for it in items
        if it.crop
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SR comparison: {_esc(', '.join(m.name for m in models))}</title>
<style>{CSS}</style></head>
<body>
<h1>SR comparison</h1>
<p id="counts">{_esc(counts)}</p>
<h2>Protocol</h2>
<p>PSNR (dB) and SSIM by <code>basicsr.metrics.calculate_psnr</code> / <code>calculate_ssim</code>, per image,
averaged per dataset x scale (the figures of <code>results.csv</code>):</p>
<ul id="protocol">{protocol}</ul>
{'<p>Notes:</p><ul>' + ''.join(notes) + '</ul>' if notes else ''}
<h2>Per dataset and scale</h2>
<p class="hint">Best per column in <b>bold</b> (highest PSNR/SSIM, fewest seconds per image).
Click a header to sort.</p>
{_summary_table(models, datasets, results)}
<h2>PSNR against scale</h2>
{plot}
<h2>Per image</h2>
<p class="hint">Best model per image and metric in <b>bold</b>. Click a header to sort, a row to open that image.</p>
{_per_image_table(items, models)}
<h2>Static crops</h2>
<div class="crops">{crops or '<p>(none: --crops 0)</p>'}</div>
<h2>Images</h2>
<p class="hint js-only">Zoom: wheel or +/&minus; (keys <kbd>+</kbd> <kbd>-</kbd> <kbd>0</kbd>, arrows pan when a
panel has focus); pan: drag. Every panel of an image and its swipe view follow. Magnification is
nearest-neighbour. |error| view: |output &minus; HR| averaged over RGB, magma colour map, black = 0,
brightest = {ERROR_RANGE:g} grey levels or more. Images load when their section comes near the view.</p>
<noscript><p>JavaScript is off: the tables, the plot and the static crops above are all there is.</p></noscript>
<div id="items">{''.join(_viewer(it) for it in items)}</div>
<script>{JS}</script>
</body></html>
"""


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{margin:.2em 0}h2{margin:1.2em 0 .4em;border-bottom:1px solid #ccc}
table.metrics{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.4em 0}
table.metrics th,table.metrics td{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.metrics td:first-child,table.metrics th:first-child{text-align:left}
table.metrics th{background:#eee;cursor:pointer;user-select:none;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:bold;background:#e3f3e3}
#per-image tbody tr{cursor:pointer}#per-image tbody tr:hover{background:#eef}
.hint{color:#555;font-size:13px}
img.plot{max-width:100%}
.crops{display:flex;flex-wrap:wrap;gap:8px}.crops img{max-height:180px}
.crops figure{margin:0}.crops figcaption{font-size:12px}
.item{border:1px solid #ccc;background:#fff;margin:1em 0;padding:.5em;min-height:120px}
.item.open{outline:3px solid #36c}
.item h3{margin:0 0 .3em;font-size:15px}.item h3 small{color:#777;font-weight:normal}
.static img.crop{max-height:60px;vertical-align:middle}
.js .static{display:none}
.bar button{min-width:2em}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.panel{margin:0;width:var(--pw,240px)}
.panel figcaption{font-size:12px;text-align:center}
.vp{position:relative;overflow:hidden;width:var(--pw,240px);aspect-ratio:var(--ar);background:#333;
 cursor:grab;touch-action:none}
.vp:focus{outline:2px solid #36c}
.vp img{position:absolute;left:0;top:0;width:100%;height:100%;transform-origin:0 0;
 image-rendering:pixelated;pointer-events:none;user-select:none}
.vp.gap{background:repeating-linear-gradient(45deg,#fee,#fee 8px,#fdd 8px,#fdd 16px);color:#900;
 display:flex;align-items:center;justify-content:center;text-align:center;font-size:12px;cursor:default;padding:4px;
 box-sizing:border-box}
.swipe{margin-top:.5em}.swipectl{font-size:13px;margin-bottom:3px}
.swvp{--pw:492px}.swtop{position:absolute;inset:0;clip-path:inset(0 50% 0 0)}
.swline{position:absolute;top:0;bottom:0;left:50%;width:2px;background:#ff0;pointer-events:none}
.js-only{display:none}.js .js-only{display:block}
"""

JS = r"""
(function () {
  'use strict';
  document.documentElement.classList.add('js');
  var MAXZ = 64;

  // ---- lazy loading: a section's images get their src when it comes near the view
  function load(sec) {
    if (sec.dataset.loaded) return;
    sec.dataset.loaded = '1';
    var err = sec.querySelector('.errview').checked;
    sec.querySelectorAll('.grid img').forEach(function (img) {
      img.src = err && img.dataset.err ? img.dataset.err : img.dataset.src;
    });
    swipe(sec);
  }
  var sections = Array.prototype.slice.call(document.querySelectorAll('section.item'));
  if ('IntersectionObserver' in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { load(e.target); io.unobserve(e.target); }
      });
    }, {rootMargin: '400px 0px'});
    sections.forEach(function (s) { io.observe(s); });
  } else {
    sections.forEach(load);
  }

  // ---- synchronised zoom and pan: one state per section, every viewport of it follows
  function state(sec) {
    if (!sec._z) sec._z = {k: 1, x: 0, y: 0};  // scale, offset (fractions of the viewport)
    return sec._z;
  }
  function clamp(st) {
    st.k = Math.max(1, Math.min(MAXZ, st.k));
    st.x = Math.min(0, Math.max(1 - st.k, st.x));
    st.y = Math.min(0, Math.max(1 - st.k, st.y));
  }
  function apply(sec) {
    var st = state(sec);
    clamp(st);
    sec.querySelectorAll('.vp').forEach(function (vp) {
      var w = vp.clientWidth, h = vp.clientHeight;
      var t = 'translate(' + (st.x * w) + 'px,' + (st.y * h) + 'px) scale(' + st.k + ')';
      vp.querySelectorAll('img').forEach(function (img) { img.style.transform = t; });
    });
    sec.querySelector('.zoom').textContent = (Math.round(st.k * 100) / 100) + 'x';
  }
  function zoomAt(sec, factor, fx, fy) {  // fx, fy: point of the viewport (0..1) that stays put
    var st = state(sec), k = Math.max(1, Math.min(MAXZ, st.k * factor));
    st.x = fx - (fx - st.x) * k / st.k;
    st.y = fy - (fy - st.y) * k / st.k;
    st.k = k;
    apply(sec);
  }
  function pan(sec, dx, dy) {  // in fractions of the viewport
    var st = state(sec);
    st.x += dx; st.y += dy;
    apply(sec);
  }
  function secOf(el) { return el.closest('section.item'); }
  document.querySelectorAll('section.item .vp:not(.gap)').forEach(function (vp) {
    var sec = secOf(vp);
    vp.addEventListener('wheel', function (e) {
      e.preventDefault();
      var r = vp.getBoundingClientRect();
      zoomAt(sec, e.deltaY < 0 ? 1.25 : 0.8, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
    }, {passive: false});
    var drag = null;
    vp.addEventListener('pointerdown', function (e) {
      drag = {x: e.clientX, y: e.clientY};
      if (vp.setPointerCapture) { try { vp.setPointerCapture(e.pointerId); } catch (err) { /* synthetic */ } }
      vp.style.cursor = 'grabbing';
    });
    vp.addEventListener('pointermove', function (e) {
      if (!drag) return;
      pan(sec, (e.clientX - drag.x) / vp.clientWidth, (e.clientY - drag.y) / vp.clientHeight);
      drag = {x: e.clientX, y: e.clientY};
    });
    function end() { drag = null; vp.style.cursor = ''; }
    vp.addEventListener('pointerup', end);
    vp.addEventListener('pointercancel', end);
    vp.addEventListener('keydown', function (e) {
      var step = 0.1 / state(sec).k, done = true;
      if (e.key === '+' || e.key === '=') zoomAt(sec, 1.25, 0.5, 0.5);
      else if (e.key === '-' || e.key === '_') zoomAt(sec, 0.8, 0.5, 0.5);
      else if (e.key === '0') { sec._z = {k: 1, x: 0, y: 0}; apply(sec); }
      else if (e.key === 'ArrowLeft') pan(sec, step, 0);
      else if (e.key === 'ArrowRight') pan(sec, -step, 0);
      else if (e.key === 'ArrowUp') pan(sec, 0, step);
      else if (e.key === 'ArrowDown') pan(sec, 0, -step);
      else done = false;
      if (done) e.preventDefault();
    });
  });
  document.querySelectorAll('section.item .bar button').forEach(function (b) {
    var sec = secOf(b);
    b.addEventListener('click', function () {
      load(sec);
      if (b.dataset.act === 'in') zoomAt(sec, 1.25, 0.5, 0.5);
      else if (b.dataset.act === 'out') zoomAt(sec, 0.8, 0.5, 0.5);
      else { sec._z = {k: 1, x: 0, y: 0}; apply(sec); }
    });
  });

  // ---- |error| view: every output panel shows its error map instead
  document.querySelectorAll('section.item .errview').forEach(function (cb) {
    var sec = secOf(cb);
    cb.addEventListener('change', function () {
      sec.querySelectorAll('.grid img').forEach(function (img) {
        if (!sec.dataset.loaded) return;
        img.src = cb.checked && img.dataset.err ? img.dataset.err : img.dataset.src;
      });
    });
  });

  // ---- swipe between any two panels: the left one is shown up to the slider
  function swipe(sec) {
    var a = sec.querySelector('.swa'), b = sec.querySelector('.swb'), r = sec.querySelector('.swr');
    if (!sec.dataset.loaded) return;
    var ia = sec.querySelector('.swa-img'), ib = sec.querySelector('.swb-img');
    if (ia.getAttribute('src') !== a.value) ia.src = a.value;
    if (ib.getAttribute('src') !== b.value) ib.src = b.value;
    sec.querySelector('.swtop').style.clipPath = 'inset(0 ' + (100 - r.value) + '% 0 0)';
    sec.querySelector('.swline').style.left = r.value + '%';
    apply(sec);
  }
  sections.forEach(function (sec) {
    ['.swa', '.swb', '.swr'].forEach(function (q) {
      var el = sec.querySelector(q);
      el.addEventListener('input', function () { swipe(sec); });
      el.addEventListener('change', function () { swipe(sec); });
    });
  });

  // ---- sortable tables; the best value per column marked where the table asks for it
  function cellValue(td, num) {
    var v = td.dataset.v !== undefined ? td.dataset.v : td.textContent;
    if (!num) return v;
    return v === '' || v === 'nan' ? NaN : parseFloat(v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    var ths = table.querySelectorAll('thead th'), body = table.tBodies[0];
    ths.forEach(function (th, col) {
      th.addEventListener('click', function () {
        var num = th.dataset.type === 'num';
        var dir = th.getAttribute('aria-sort') === 'descending' ? 1 : -1;  // first click: descending
        if (!num && !th.getAttribute('aria-sort')) dir = 1;
        ths.forEach(function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var a = cellValue(r1.cells[col], num), b = cellValue(r2.cells[col], num);
          if (num) {
            if (isNaN(a)) return isNaN(b) ? 0 : 1;  // missing values last either way
            if (isNaN(b)) return -1;
            return (a - b) * dir;
          }
          return a.localeCompare(b, undefined, {numeric: true}) * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
      if (table.classList.contains('mark-best') && th.dataset.best) {
        var best = null, cells = [];
        Array.prototype.forEach.call(body.rows, function (r) {
          var v = cellValue(r.cells[col], true);
          cells.push([r.cells[col], v]);
          if (!isNaN(v) && (best === null || (th.dataset.best === 'max' ? v > best : v < best))) best = v;
        });
        if (cells.length > 1) cells.forEach(function (c) { if (c[1] === best) c[0].classList.add('best'); });
      }
    });
  });

  // ---- a click on a per-image row opens that image
  function open(id) {
    var sec = document.getElementById(id);
    if (!sec) return;
    document.querySelectorAll('section.item.open').forEach(function (s) { s.classList.remove('open'); });
    sec.classList.add('open');
    load(sec);
    sec.scrollIntoView({block: 'start'});
  }
  document.querySelectorAll('tr[data-open]').forEach(function (tr) {
    tr.addEventListener('click', function (e) {
      e.preventDefault();
      history.replaceState(null, '', '#' + tr.dataset.open);
      open(tr.dataset.open);
    });
  });
  window.addEventListener('hashchange', function () { open(location.hash.slice(1)); });
  if (location.hash) open(location.hash.slice(1));
  window.__reportReady = true;
})();
"""
