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

/// Trailing moving average over `w` points.
fn moving_average(v: &[f64], w: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len());
    let mut sum = 0.0;
    for i in 0..v.len() {
        sum += v[i];
        if i >= w {
            sum -= v[i - w];
        }
        out.push(sum / (i + 1).min(w) as f64);
    }
    out
}

/// Two stacked panels (loss above, with its moving average; lr below) sharing the step axis.
pub fn loss_lr_svg(history: &[StepRecord]) -> String {
    let (w, h, pad) = (720.0, 260.0, 50.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n",
        2.0 * h
    );
    let n = history.len().max(1) as f64;
    type Field = fn(&StepRecord) -> f64;
    let panels: [(&str, Field, &str); 2] = [
        ("loss", |r| r.loss, "#9ecae1"),
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
        let project = |vals: &[f64]| -> Vec<(f64, f64)> {
            vals.iter()
                .enumerate()
                .map(|(i, v)| {
                    let x = pad + (w - 2.0 * pad) * (i as f64 + 1.0) / n;
                    let y = top + h - pad + (pad * 2.0 - h) * (v - lo) / (hi - lo);
                    (x, y)
                })
                .collect()
        };
        let pts = project(&vals);
        if k == 0 && vals.len() >= 20 {
            let smooth = moving_average(&vals, (vals.len() / 20).max(5));
            svg.push_str(&polyline(&project(&smooth), "#08306b"));
            svg.push('\n');
        }
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
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">step {}</text>\n\
             <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{lo:.2}</text>",
            w - pad,
            top + h - pad + 16.0,
            history.last().map_or(0, |r| r.step),
            pad - 4.0,
            top + h - pad + 4.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_has_one_point_per_step_and_a_smoothed_loss() {
        let history: Vec<StepRecord> = (1..=40)
            .map(|s| StepRecord {
                step: s,
                loss: 3.0 / s as f64,
                lr: 1e-3 * s as f64 / 40.0,
                grad_norm: 1.0,
                pairs_per_s: 10.0,
                world_size: 1,
                data: Default::default(),
            })
            .collect();
        let svg = loss_lr_svg(&history);
        let lines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
        // loss, its moving average, lr
        assert_eq!(lines.len(), 3);
        for l in lines {
            assert_eq!(l.matches(',').count(), 40, "{l}");
        }
        assert!(svg.contains("step 40"));
        assert_eq!(moving_average(&[1.0, 3.0, 5.0], 2), vec![1.0, 2.0, 4.0]);
    }
}
