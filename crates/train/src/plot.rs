//! A dependency-free SVG of training loss and learning rate against step.

use crate::trainer::StepRecord;
use std::fmt::Write;

fn polyline(points: &[(f64, f64)], color: &str) -> String {
    let mut s = String::new();
    for (x, y) in points {
        let _ = write!(s, "{x:.1},{y:.1} ");
    }
    format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{s}\"/>")
}

/// Two stacked panels (loss above, lr below) sharing the step axis.
pub fn loss_lr_svg(history: &[StepRecord]) -> String {
    let (w, h, pad) = (720.0, 260.0, 50.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n",
        2.0 * h
    );
    let n = history.len().max(1) as f64;
    let panels: [(&str, fn(&StepRecord) -> f64, &str); 2] = [
        ("loss", |r| r.loss, "#1f77b4"),
        ("learning rate", |r| r.lr, "#d62728"),
    ];
    for (k, (label, get, color)) in panels.iter().enumerate() {
        let top = k as f64 * h;
        let vals: Vec<f64> = history.iter().map(get).collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
        let hi = vals
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
            .max(lo + 1e-12);
        let pts: Vec<(f64, f64)> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = pad + (w - 2.0 * pad) * (i as f64 + 1.0) / n;
                let y = top + h - pad + (pad * 2.0 - h) * (v - lo) / (hi - lo);
                (x, y)
            })
            .collect();
        let _ = writeln!(
            svg,
            "<text x=\"{pad}\" y=\"{:.0}\">{label} (max {hi:.4e})</text>\n\
             <line x1=\"{pad}\" y1=\"{:.0}\" x2=\"{:.0}\" y2=\"{:.0}\" stroke=\"#888\"/>\n\
             <line x1=\"{pad}\" y1=\"{:.0}\" x2=\"{pad}\" y2=\"{:.0}\" stroke=\"#888\"/>\n{}",
            top + pad - 10.0,
            top + h - pad,
            w - pad,
            top + h - pad,
            top + pad,
            top + h - pad,
            polyline(&pts, color)
        );
        let _ = writeln!(
            svg,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">step {}</text>",
            w - pad,
            top + h - pad + 16.0,
            history.last().map_or(0, |r| r.step)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
