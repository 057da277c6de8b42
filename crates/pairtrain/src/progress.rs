//! Progress bars on stderr, in one style across commands.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub fn bar(len: u64, what: &str, unit: &str, quiet: bool) -> ProgressBar {
    let template = format!("{what} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})");
    styled(len, &template, quiet)
}

/// A bar over bytes (input read by the miners).
pub fn bytes_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    let template = format!(
        "{what} [{{bar:40}}] {{binary_bytes}}/{{binary_total_bytes}} ({{binary_bytes_per_sec}}, \
         ETA {{eta}})"
    );
    styled(len, &template, quiet)
}

fn styled(len: u64, template: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// A counter of lines for work of unknown length (`data stats`, `data validate`).
pub fn line_spinner(what: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(s) = ProgressStyle::with_template(&format!(
        "{what} {{spinner}} {{human_pos}} lines ({{per_sec}}) {{elapsed}}"
    )) {
        pb.set_style(s);
    }
    pb
}
