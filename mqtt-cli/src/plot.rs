//! `bench --plot`: an SVG of latency over the run (each sample a dot) and of
//! its distribution (latency by percentile), both on a log scale of
//! milliseconds. Hand-written SVG: no plotting dependency.

use std::fmt::Write as _;

use crate::hist::Latency;

const W: f64 = 1100.0;
const H: f64 = 460.0;
const PANEL_W: f64 = 470.0;
const PANEL_H: f64 = 330.0;
const TOP: f64 = 70.0;

/// The SVG document.
pub(crate) fn svg(title: &str, latency: &Latency) -> String {
    let samples = latency.samples();
    let dist = latency.distribution();
    let max_ms = dist.last().map_or(1.0, |d| d.1).max(0.01);
    let min_ms = dist
        .first()
        .map_or(0.001, |d| d.1)
        .max(0.001)
        .min(max_ms / 10.0);
    let (lo, hi) = (
        min_ms.log10().floor(),
        max_ms.log10().ceil().max(min_ms.log10().floor() + 1.0),
    );
    let y = |ms: f64| TOP + PANEL_H - (ms.max(min_ms).log10() - lo) / (hi - lo) * PANEL_H;
    let t_max = samples
        .iter()
        .map(|s| f64::from(s.0))
        .fold(0.0, f64::max)
        .max(0.001);

    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
    let p = latency.percentiles();
    let _ = writeln!(
        out,
        r##"<text x="{}" y="48" text-anchor="middle" fill="#444">p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)</text>"##,
        W / 2.0,
        crate::common::micros(p.p50),
        crate::common::micros(p.p90),
        crate::common::micros(p.p99),
        crate::common::micros(p.p999),
        crate::common::micros(p.max),
        p.count
    );
    for (i, x0) in [60.0, 60.0 + PANEL_W + 90.0].into_iter().enumerate() {
        // Frame, and the latency axis (decades).
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>"##
        );
        let mut e = lo;
        while e <= hi {
            let yy = y(10f64.powf(e));
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 + PANEL_W,
                x0 - 4.0,
                yy + 4.0,
                ms_label(10f64.powf(e))
            );
            e += 1.0;
        }
        let label = if i == 0 {
            "latency (ms) over the run"
        } else {
            "latency (ms) by percentile"
        };
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">{label}</text>"#,
            x0 + PANEL_W / 2.0,
            TOP - 6.0
        );
    }
    // Left: each sample.
    let x0 = 60.0;
    let _ = write!(out, r##"<g fill="#1f77b4" fill-opacity="0.35">"##);
    for &(t, ms) in samples {
        let xx = x0 + f64::from(t) / t_max * PANEL_W;
        let _ = write!(
            out,
            r#"<circle cx="{xx:.1}" cy="{:.1}" r="1.3"/>"#,
            y(f64::from(ms))
        );
    }
    let _ = writeln!(out, "</g>");
    for k in 0..=4 {
        let t = t_max * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:.2} s</text>"#,
            x0 + f64::from(k) / 4.0 * PANEL_W,
            TOP + PANEL_H + 16.0
        );
    }
    // Right: the distribution, x = log10(1 / (1 - q)) up to 99.999 %.
    let x0 = 60.0 + PANEL_W + 90.0;
    let nines = 5.0;
    let qx = |q: f64| x0 + ((1.0 / (1.0 - q.min(0.99999))).log10() / nines) * PANEL_W;
    let mut path = String::new();
    for (k, &(q, ms)) in dist.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if k == 0 { "M" } else { "L" },
            qx(q),
            y(ms)
        );
    }
    let _ = writeln!(
        out,
        r##"<path d="{path}" fill="none" stroke="#d62728" stroke-width="2"/>"##
    );
    for (q, label) in [
        (0.0, "0%"),
        (0.9, "90%"),
        (0.99, "99%"),
        (0.999, "99.9%"),
        (0.9999, "99.99%"),
        (0.99999, "99.999%"),
    ] {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            qx(q),
            TOP + PANEL_H + 16.0
        );
    }
    out.push_str("</svg>\n");
    out
}

fn ms_label(ms: f64) -> String {
    if ms >= 1.0 {
        format!("{ms:.0}")
    } else {
        format!("{ms}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_svg_with_every_sample_and_the_curve() {
        let mut l = Latency::new().unwrap();
        for i in 0..500u64 {
            l.record(Duration::from_millis(i), 100 + i * 10);
        }
        let svg = svg("t <1>", &l);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 500);
        assert!(svg.contains("t &lt;1&gt;"));
        assert!(svg.contains("<path d=\"M"));
    }
}
