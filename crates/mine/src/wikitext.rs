//! Wikitext to plain text, for article intros: templates, references, tables, files and
//! comments removed, links replaced by their text, bold/italic marks and HTML tags dropped.

/// The intro: everything before the first section heading.
pub fn intro(text: &str) -> &str {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("==") {
            return &text[..start];
        }
        start += line.len();
    }
    text
}

/// `[[Category:Name|sort key]]` names, in order, without duplicates.
pub fn categories(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("[[") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find("]]") else { break };
        let inner = &rest[..end];
        if let Some((ns, name)) = inner.split_once(':') {
            if ns.trim().eq_ignore_ascii_case("category") {
                let name = name
                    .split('|')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .replace('_', " ");
                if !name.is_empty() && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// Disambiguation pages, by title or by their usual templates.
pub fn is_disambiguation(title: &str, text: &str) -> bool {
    if title.ends_with("(disambiguation)") {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    [
        "{{disambiguation",
        "{{disambig",
        "{{dab",
        "{{hndis",
        "{{geodis",
        "{{set index",
    ]
    .iter()
    .any(|t| lower.contains(t))
}

/// Removes every balanced `open … close` span (nested ones too). An unclosed opener removes
/// the rest, as MediaWiki shows broken markup as nothing useful either.
fn remove_nested(s: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if s[i..].starts_with(open) {
            depth += 1;
            i += open.len();
        } else if depth > 0 && s[i..].starts_with(close) {
            depth -= 1;
            i += close.len();
        } else {
            let ch = s[i..].chars().next().expect("in bounds");
            if depth == 0 {
                out.push(ch);
            }
            i += ch.len_utf8();
        }
    }
    out
}

/// Removes `<tag …>…</tag>` and `<tag …/>` (case-insensitive, not nested).
fn remove_element(s: &str, tag: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let lower = s.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut i = 0;
    while let Some(j) = lower[i..].find(&open) {
        let at = i + j;
        // `<ref` must not match `<references`.
        let next = lower
            .as_bytes()
            .get(at + open.len())
            .copied()
            .unwrap_or(b'>');
        if next.is_ascii_alphanumeric() {
            out.push_str(&s[i..at + open.len()]);
            i = at + open.len();
            continue;
        }
        out.push_str(&s[i..at]);
        let Some(gt) = lower[at..].find('>') else {
            return out;
        };
        let tag_end = at + gt + 1;
        if lower[..tag_end].ends_with("/>") {
            i = tag_end;
        } else if let Some(k) = lower[tag_end..].find(&close) {
            i = tag_end + k + close.len();
        } else {
            i = tag_end;
        }
    }
    out.push_str(&s[i..]);
    out
}

const DROP_NAMESPACES: &[&str] = &["file", "image", "category", "media"];

/// `[[target|text]]` → text, `[[target]]` → target; files, images and categories removed;
/// interlanguage links (`[[fr:…]]`) removed.
fn links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("[[") {
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        // Find the matching "]]", allowing links nested inside (file captions).
        let (mut depth, mut j) = (1, 0);
        let b = rest.as_bytes();
        while j + 1 < b.len() + 1 && depth > 0 {
            if rest[j..].starts_with("[[") {
                depth += 1;
                j += 2;
            } else if rest[j..].starts_with("]]") {
                depth -= 1;
                j += 2;
            } else if j < b.len() {
                j += rest[j..].chars().next().map_or(1, char::len_utf8);
            } else {
                break;
            }
        }
        if depth > 0 {
            return out;
        }
        let inner = &rest[..j - 2];
        rest = &rest[j..];
        if let Some((ns, _)) = inner.split_once(':') {
            let ns = ns.trim().to_ascii_lowercase();
            if DROP_NAMESPACES.contains(&ns.as_str())
                || (ns.len() <= 3 && ns.chars().all(|c| c.is_ascii_lowercase()) && !ns.is_empty())
            {
                continue;
            }
        }
        let text = inner.rsplit('|').next().unwrap_or(inner);
        out.push_str(&links(text));
    }
    out.push_str(rest);
    out
}

/// `[http://x text]` → text; `[http://x]` → nothing.
fn external_links(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let is_url = ["http://", "https://", "//", "ftp://"]
            .iter()
            .any(|p| after.starts_with(p));
        match after.find(']') {
            Some(j) if is_url => {
                if let Some((_, text)) = after[..j].split_once(' ') {
                    out.push_str(text);
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Plain text of a piece of wikitext.
pub fn clean(text: &str) -> String {
    let s = remove_nested(text, "<!--", "-->");
    let s = remove_element(&s, "ref");
    let s = remove_element(&s, "gallery");
    let s = remove_nested(&s, "{{", "}}");
    let s = remove_nested(&s, "{|", "|}");
    let s = links(&s);
    let s = external_links(&s);
    let s = s.replace("'''", "").replace("''", "");
    let s = crate::html::html_to_text(&s);
    let s = empty_parentheses(&s).replace(" ,", ",").replace(" .", ".");
    crate::html::collapse(&s)
}

/// Removes parentheses left with only punctuation inside ("(; ; )" where pronunciation
/// templates were), and a "; " or ", " left at the start of a parenthesis.
fn empty_parentheses(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('(') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find(')') {
            Some(j)
                if after[..j]
                    .chars()
                    .all(|c| c.is_whitespace() || ";,:".contains(c)) =>
            {
                rest = &after[j + 1..];
                if out.ends_with(' ') && rest.starts_with([' ', ',', '.', ';']) {
                    out.pop();
                }
            }
            _ => {
                out.push('(');
                rest = after.trim_start_matches([';', ',', ' ']);
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intro_is_cleaned() {
        let w = "{{Infobox person|name=X|birth={{birth date|1900|1|1}}}}\n\
                 '''Ada''' (born 1815<ref name=\"a\">Source {{cite|x}}</ref>) was an \
                 [[England|English]] [[mathematician]].<ref name=b/> [[File:Ada.jpg|thumb|A \
                 [[portrait]]]] See [https://example.org the site].<!-- hidden -->\n\
                 {| class=\"wikitable\"\n| a || b\n|}\nMore.\n== Life ==\nLater text.";
        assert_eq!(
            clean(intro(w)),
            "Ada (born 1815) was an English mathematician. See the site.\nMore."
        );
    }

    #[test]
    fn template_leftovers_go() {
        assert_eq!(
            clean("Albania ({{IPA|x}}; {{lang|sq|y}}), officially ({{lang|z}}) the Republic."),
            "Albania, officially the Republic."
        );
        assert_eq!(clean("X ({{a}}; born 1900) was."), "X (born 1900) was.");
    }

    #[test]
    fn categories_and_disambiguation() {
        let w = "x [[Category:Living people|Doe]] [[Category:Poets]] [[category:Poets]]";
        assert_eq!(categories(w), ["Living people", "Poets"]);
        assert!(is_disambiguation("Mercury (disambiguation)", ""));
        assert!(is_disambiguation(
            "Mercury",
            "'''Mercury''' may be:\n{{Disambiguation}}"
        ));
        assert!(!is_disambiguation("Mercury", "a planet"));
    }
}
