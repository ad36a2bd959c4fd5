//! Small inline-SVG charts for the HTML reports (no scripts, no external files).

use std::fmt::Write as _;

/// One bar: label, value, optional interval.
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

/// Left margin that fits the longest label (about 7 px a character at 12 px).
fn label_width(bars: &[Bar], min: f64) -> f64 {
    bars.iter()
        .map(|b| b.label.chars().count() as f64 * 7.0 + 14.0)
        .fold(min, f64::max)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG chart's opening tag (accessible title) and its visible title.
fn chart_header(title: &str, width: f64, height: f64) -> String {
    let t = esc(title);
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{t}"><title>{t}</title><text x="4" y="16" class="ct">{t}</text>"#
    )
}

/// Horizontal bars from `lo` to each value, with CI whiskers and an optional dashed
/// reference line (e.g. the neutral F1). Values are drawn on `[lo, hi]`; `fmt` prints them.
pub fn hbars(
    title: &str,
    bars: &[Bar],
    reference: Option<(&str, f64)>,
    lo: f64,
    hi: f64,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let (left, width, row) = (label_width(bars, 110.0), 420.0, 26.0);
    let height = 40.0 + row * bars.len() as f64 + if reference.is_some() { 22.0 } else { 0.0 };
    let x = |v: f64| left + width * ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let mut s = chart_header(title, left + width + 90.0, height);
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        write!(s, r##"<line x1="{0}" x2="{0}" y1="26" y2="{1}" class="grid"/><text x="{0}" y="{2}" class="tick" text-anchor="middle">{3}</text>"##, x(v), height - 14.0, height - 2.0, esc(&fmt(v))).unwrap();
    }
    draw_rows(
        &mut s,
        bars,
        left,
        row,
        &x,
        lo,
        &|b, v| x(b.ci.map_or(v, |c| c[1]).max(v)) + 6.0,
        fmt,
    );
    if let Some((name, v)) = reference {
        let bottom = 30.0 + row * bars.len() as f64;
        write!(s, r##"<line x1="{0}" x2="{0}" y1="26" y2="{1}" class="ref"/><text x="{0}" y="{2}" class="reflbl" text-anchor="middle">{3} = {4}</text>"##, x(v), bottom, bottom + 14.0, esc(name), esc(&fmt(v))).unwrap();
    }
    s.push_str("</svg>");
    s
}

/// The largest |value| or interval end of `bars` (the half-width of a diverging chart).
pub fn extent(bars: &[Bar]) -> f64 {
    bars.iter()
        .flat_map(|b| b.value.into_iter().chain(b.ci.into_iter().flatten()))
        .fold(0.0_f64, |a, v| a.max(v.abs()))
}

/// Bars diverging from zero (positive right, negative left); `sides` names the two
/// directions (e.g. under- and over-recommended). The axis spans ±`half` (charts meant to
/// be compared share it), or ±`extent(bars)` when `None`.
pub fn diverging(
    title: &str,
    bars: &[Bar],
    sides: [&str; 2],
    half: Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let m = half.unwrap_or_else(|| extent(bars)).max(1e-6);
    let (left, width, row) = (label_width(bars, 150.0), 400.0, 26.0);
    let height = 50.0 + row * bars.len() as f64;
    let x = |v: f64| left + width * (0.5 + 0.5 * v / m);
    let mut s = chart_header(title, left + width + 70.0, height);
    write!(
        s,
        r##"<line x1="{0}" x2="{0}" y1="26" y2="{1}" class="ref"/>"##,
        x(0.0),
        height - 18.0
    )
    .unwrap();
    for (v, anchor) in [(-m, "start"), (0.0, "middle"), (m, "end")] {
        write!(
            s,
            r##"<text x="{}" y="{}" class="tick" text-anchor="{anchor}">{}</text>"##,
            x(v),
            height - 4.0,
            esc(&fmt(v))
        )
        .unwrap();
    }
    write!(s, r##"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text><text x="{}" y="{}" class="tick">{}</text>"##, x(0.0) - 8.0, height - 18.0, esc(sides[0]), x(0.0) + 8.0, height - 18.0, esc(sides[1])).unwrap();
    draw_rows(
        &mut s,
        bars,
        left,
        row,
        &x,
        0.0,
        &|_, _| left + width + 4.0,
        fmt,
    );
    s.push_str("</svg>");
    s
}

/// One row per bar: its label, a bar from `origin` to the value (`neg` class below the
/// origin), the interval whisker, and the value printed at `value_x`.
#[allow(clippy::too_many_arguments)]
fn draw_rows(
    s: &mut String,
    bars: &[Bar],
    left: f64,
    row: f64,
    x: &dyn Fn(f64) -> f64,
    origin: f64,
    value_x: &dyn Fn(&Bar, f64) -> f64,
    fmt: &dyn Fn(f64) -> String,
) {
    for (i, b) in bars.iter().enumerate() {
        let y = 30.0 + row * i as f64;
        write!(
            s,
            r##"<text x="{}" y="{}" class="lbl" text-anchor="end">{}</text>"##,
            left - 6.0,
            y + 15.0,
            esc(&b.label)
        )
        .unwrap();
        let Some(v) = b.value else {
            write!(
                s,
                r##"<text x="{}" y="{}" class="val">undefined</text>"##,
                left + 4.0,
                y + 15.0
            )
            .unwrap();
            continue;
        };
        let (a, c) = (x(origin).min(x(v)), x(origin).max(x(v)));
        let class = if v >= origin { "bar" } else { "neg" };
        write!(
            s,
            r##"<rect x="{a}" y="{}" width="{}" height="18" class="{class}"/>"##,
            y + 2.0,
            (c - a).max(1.0)
        )
        .unwrap();
        if let Some([l, h]) = b.ci {
            let ym = y + 11.0;
            write!(
                s,
                r##"<path d="M{0} {1}H{2}M{0} {3}V{4}M{2} {3}V{4}" class="ci"/>"##,
                x(l),
                ym,
                x(h),
                ym - 5.0,
                ym + 5.0
            )
            .unwrap();
        }
        write!(
            s,
            r##"<text x="{}" y="{}" class="val">{}</text>"##,
            value_x(b, v),
            y + 15.0,
            esc(&fmt(v))
        )
        .unwrap();
    }
}

/// The CSS the charts use (inlined in every report).
pub const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1d232a;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d8dee4;padding-bottom:.3rem}h3{font-size:1.05rem}
.tw{overflow-x:auto;margin:.6rem 0 1rem}table{border-collapse:collapse;font-size:.92rem}td{white-space:nowrap}td:last-child{white-space:normal;min-width:14rem}details{margin:.6rem 0}summary{cursor:pointer;font-weight:600}th,td{border:1px solid #d8dee4;padding:.3rem .6rem;text-align:right}th{background:#f3f5f7}td:first-child,th:first-child{text-align:left}
.muted{color:#5b6570;font-size:.9rem}.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5rem .8rem;margin:.8rem 0}
code{background:#f3f5f7;padding:0 .25rem;border-radius:3px}
svg{display:block;margin:.5rem 0 1.2rem;font-size:12px}
svg .ct{font-weight:600;font-size:13px}svg .grid{stroke:#e4e8ec}svg .tick{fill:#5b6570;font-size:11px}
svg .bar{fill:#3b7dd8}svg .neg{fill:#d8693b}svg .ci{stroke:#1d232a;stroke-width:1.4;fill:none}
svg .ref{stroke:#c0392b;stroke-width:1.5;stroke-dasharray:4 3}svg .reflbl{fill:#c0392b;font-size:11px}svg .val{fill:#1d232a}svg .lbl{fill:#1d232a}
"#;

/// One method on a trade-off chart: every seed's point `[x, y]`, and the paper's point.
pub struct Series {
    pub label: String,
    pub points: Vec<[f64; 2]>,
    pub paper: Option<[f64; 2]>,
}

/// Colours of the series (cycled).
const PALETTE: [&str; 10] = [
    "#3b7dd8", "#d8693b", "#2e9e5b", "#8e5bd8", "#c0392b", "#7f8c8d", "#d4a017", "#1abc9c",
    "#e84393", "#34495e",
];

/// Mean and sample standard deviation of each coordinate of `points` (0 with one point).
fn centre(points: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let n = points.len() as f64;
    let m = [0, 1].map(|k| points.iter().map(|p| p[k]).sum::<f64>() / n);
    let sd = [0, 1].map(|k| {
        if points.len() < 2 {
            0.0
        } else {
            (points.iter().map(|p| (p[k] - m[k]).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        }
    });
    (m, sd)
}

/// A trade-off chart (ours): accuracy (`axes[0]`, x) against a fairness figure (`axes[1]`,
/// y, lower is fairer), one colour per series: every seed as a dot, the mean as a cross
/// whose arms are ± one standard deviation over seeds, and the paper's point as a hollow
/// diamond. Both axes span the points with a margin; `fmt` prints the ticks.
pub fn tradeoff(
    title: &str,
    axes: [&str; 2],
    series: &[Series],
    fmt: &dyn Fn(f64) -> String,
) -> String {
    let all: Vec<[f64; 2]> = series
        .iter()
        .flat_map(|s| s.points.iter().copied().chain(s.paper))
        .filter(|p| p[0].is_finite() && p[1].is_finite())
        .collect();
    let span = |k: usize| {
        let (lo, hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p[k]), b.max(p[k]))
            });
        // Every point on one value (a table of all-Yes answers): half a unit each side,
        // so that the ticks stay apart.
        let pad = match hi - lo < 1e-9 {
            true => 0.5,
            false => ((hi - lo) * 0.08).max(1e-3),
        };
        match lo.is_finite() {
            // A figure that cannot be negative keeps its axis at or above 0.
            true if lo >= 0.0 => [(lo - pad).max(0.0), hi + pad],
            true => [lo - pad, hi + pad],
            false => [0.0, 1.0],
        }
    };
    let (sx, sy) = (span(0), span(1));
    let (left, top, w, h) = (64.0, 30.0, 440.0, 300.0);
    let legend = series
        .iter()
        .map(|s| s.label.chars().count())
        .fold(14, usize::max) as f64
        * 7.0
        + 44.0;
    let x = |v: f64| left + w * (v - sx[0]) / (sx[1] - sx[0]);
    let y = |v: f64| top + h - h * (v - sy[0]) / (sy[1] - sy[0]);
    let mut s = chart_header(title, left + w + 20.0 + legend, top + h + 44.0);
    for k in 0..=4 {
        let (vx, vy) = (
            sx[0] + (sx[1] - sx[0]) * k as f64 / 4.0,
            sy[0] + (sy[1] - sy[0]) * k as f64 / 4.0,
        );
        write!(s, r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" class="grid"/><text x="{0}" y="{2}" class="tick" text-anchor="middle">{3}</text>"##, x(vx), top + h, top + h + 16.0, esc(&fmt(vx))).unwrap();
        write!(s, r##"<line x1="{left}" x2="{0}" y1="{1}" y2="{1}" class="grid"/><text x="{2}" y="{3}" class="tick" text-anchor="end">{4}</text>"##, left + w, y(vy), left - 4.0, y(vy) + 4.0, esc(&fmt(vy))).unwrap();
    }
    let (ax, ay, my) = (left + w / 2.0, top + h + 34.0, top + h / 2.0);
    let (xl, yl) = (esc(axes[0]), esc(axes[1]));
    write!(s, r##"<text x="{ax}" y="{ay}" class="lbl" text-anchor="middle">{xl} →</text><text x="14" y="{my}" class="lbl" transform="rotate(-90 14 {my})" text-anchor="middle">{yl} (lower is fairer)</text>"##).unwrap();
    for (i, se) in series.iter().enumerate() {
        let c = PALETTE[i % PALETTE.len()];
        for p in &se.points {
            write!(
                s,
                r##"<circle cx="{}" cy="{}" r="3" fill="{c}" fill-opacity="0.55"/>"##,
                x(p[0]),
                y(p[1])
            )
            .unwrap();
        }
        if !se.points.is_empty() {
            let (m, sd) = centre(&se.points);
            let (cx, cy) = (x(m[0]), y(m[1]));
            let (x0, x1) = (x(m[0] - sd[0]), x(m[0] + sd[0]));
            let (y0, y1) = (y(m[1] - sd[1]), y(m[1] + sd[1]));
            write!(s, r##"<path d="M{x0} {cy}H{x1}M{cx} {y0}V{y1}" stroke="{c}" stroke-width="2" fill="none"/><circle cx="{cx}" cy="{cy}" r="4.5" fill="{c}"/>"##).unwrap();
        }
        if let Some(p) = se.paper {
            let (px, py) = (x(p[0]), y(p[1]));
            write!(s, r##"<path d="M{px} {}L{} {py}L{px} {}L{} {py}Z" stroke="{c}" stroke-width="1.6" fill="white"/>"##, py - 6.0, px + 6.0, py + 6.0, px - 6.0).unwrap();
        }
        let ly = top + 8.0 + 18.0 * i as f64;
        write!(s, r##"<circle cx="{}" cy="{ly}" r="4.5" fill="{c}"/><text x="{}" y="{}" class="lbl">{}</text>"##, left + w + 26.0, left + w + 36.0, ly + 4.0, esc(&se.label)).unwrap();
    }
    // The marks: a seed, the mean ± std over seeds, the paper.
    let (lx, ly) = (left + w + 26.0, top + 22.0 + 18.0 * series.len() as f64);
    let (tx, d) = (lx + 10.0, 6.0);
    write!(s, r##"<circle cx="{lx}" cy="{ly}" r="3" fill="#1d232a" fill-opacity="0.55"/><text x="{tx}" y="{}" class="tick">a seed</text>"##, ly + 4.0).unwrap();
    let ly = ly + 18.0;
    write!(s, r##"<path d="M{} {ly}H{}M{lx} {}V{}" stroke="#1d232a" stroke-width="2"/><text x="{tx}" y="{}" class="tick">mean ± std</text>"##, lx - d, lx + d, ly - d, ly + d, ly + 4.0).unwrap();
    let ly = ly + 18.0;
    write!(s, r##"<path d="M{lx} {}L{} {ly}L{lx} {}L{} {ly}Z" stroke="#1d232a" stroke-width="1.4" fill="white"/><text x="{tx}" y="{}" class="tick">the paper</text>"##, ly - d, lx + d, ly + d, lx - d, ly + 4.0).unwrap();
    s.push_str("</svg>");
    s
}
