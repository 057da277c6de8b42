//! Wikitext to plain text, for article intros: templates, references, tables, files and
//! comments removed, links replaced by their text, bold/italic marks, magic words and HTML tags
//! dropped. Namespaces are the wiki's own (see `siteinfo`): `[[Datei:…]]` is a file on the German
//! Wikipedia, `[[Kategoreja:…]]` a category on the Latgalian one.

use crate::siteinfo::{Namespaces, CATEGORY, FILE, MEDIA};

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

/// The text without comments and `<nowiki>` spans, whose links are not links.
fn live_markup(text: &str) -> String {
    remove_element(&remove_nested(text, "<!--", "-->"), "nowiki")
}

/// Every `[[prefix:rest]]` link of a page (not `[[:prefix:…]]`, which shows as text), not
/// nested: categories and interlanguage links stand on their own.
fn prefixed_links(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let i = rest.find("[[")?;
        rest = &rest[i + 2..];
        let end = rest.find("]]")?;
        let inner = &rest[..end];
        if let Some((prefix, name)) = inner.split_once(':') {
            if !prefix.is_empty() && !prefix.contains('[') {
                return Some((prefix, name));
            }
        }
    })
}

/// A title as MediaWiki compares them: `_` as space, runs of spaces as one, first letter upper
/// case (every Wikipedia capitalizes the first letter of titles), no `#section`.
pub fn normalize_title(t: &str) -> String {
    let t = t.split('#').next().unwrap_or("");
    let t = t.replace('_', " ");
    let mut words = t.split_whitespace();
    let mut out = String::with_capacity(t.len());
    if let Some(w) = words.next() {
        let mut cs = w.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    for w in words {
        out.push(' ');
        out.push_str(w);
    }
    out
}

/// Category names of a page (`[[Category:Name|sort key]]`, `[[Kategorie:Name]]`: any name the
/// wiki gives namespace 14), in order, without duplicates.
pub fn categories(text: &str, ns: &Namespaces) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let text = live_markup(text);
    for (prefix, rest) in prefixed_links(&text) {
        if ns.key_of(prefix) == Some(CATEGORY) {
            let name = normalize_title(rest.split('|').next().unwrap_or(""));
            if !name.is_empty() && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The interlanguage links of a page: (edition code, title), `[[de:Berg]]` → ("de", "Berg").
/// Links to a section (`[[de:Berg#Geschichte]]`) are not the same article and are left out.
pub fn langlinks(text: &str, ns: &Namespaces) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let text = live_markup(text);
    for (prefix, rest) in prefixed_links(&text) {
        if ns.key_of(prefix).is_some() {
            continue;
        }
        if let Some(code) = crate::langcodes::canonical(prefix) {
            let target = rest.split('|').next().unwrap_or("");
            let title = normalize_title(target);
            if !title.is_empty() && !target.contains('#') && !out.iter().any(|(c, _)| *c == code) {
                out.push((code, title));
            }
        }
    }
    out
}

/// The names of the disambiguation templates of the largest Wikipedias, lower case. Only the
/// whole name counts: `{{Disambiguation needed}}` is a cleanup tag on an article.
#[rustfmt::skip]
const DISAMBIGUATION: &[&str] = &[
    "disambiguation", "disambig", "dab", "hndis", "geodis", "set index", "set index article",
    "begriffsklärung", "homonymie", "disambigua", "desambiguación", "desambiguació",
    "desambiguação", "неоднозначность", "многозначность", "неоднозначність", "ujednoznacznienie",
    "dubbelzinnig", "förgreningssida", "flertydig", "pekerside", "täsmennyssivu", "rozcestník",
    "egyért", "anlam ayrımı", "曖昧さ回避", "消歧义", "消歧義", "disambiguasi", "täpsustus",
    "nozīmju atdalīšana",
];

/// Disambiguation pages, by title or by their usual templates.
pub fn is_disambiguation(title: &str, text: &str) -> bool {
    if title.ends_with("(disambiguation)") {
        return true;
    }
    text.match_indices("{{").any(|(i, _)| {
        // The template's name, lower-cased: only its first few characters are looked at.
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| !matches!(c, '|' | '}' | '\n'))
            .take(40)
            .collect::<String>()
            .trim()
            .to_lowercase();
        DISAMBIGUATION.contains(&name.replace('_', " ").as_str())
    })
}

/// Whether a page is a redirect by its text: `#REDIRECT [[X]]` in any language
/// (`#WEITERLEITUNG`, `#REDIRECTION`, `#ПЕРЕНАПРАВЛЕНИЕ`): old dumps have no `<redirect>` element.
/// Returns the target.
pub fn redirect_target(text: &str) -> Option<String> {
    let t = text.trim_start().strip_prefix('#')?;
    let word = t.find(|c: char| !c.is_alphabetic()).unwrap_or(t.len());
    if word == 0 {
        return None;
    }
    let rest = t[word..].trim_start_matches([' ', ':', '\t']);
    let inner = rest.strip_prefix("[[")?;
    let end = inner.find("]]")?;
    let target = inner[..end].split('|').next().unwrap_or("").trim();
    (!target.is_empty()).then(|| target.to_string())
}

/// Removes every balanced `open … close` span (nested ones too). An unclosed opener removes
/// the rest, and a stray closer goes, as MediaWiki shows broken markup as nothing useful either.
fn remove_nested(s: &str, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if s[i..].starts_with(open) {
            depth += 1;
            i += open.len();
        } else if s[i..].starts_with(close) {
            // A closer without its opener is broken markup too: not text.
            depth = depth.saturating_sub(1);
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

/// The byte length of `s` up to and including the `]]` that closes a `[[` just before it,
/// counting links nested inside (file captions); None when it is never closed.
fn link_end(s: &str) -> Option<usize> {
    let mut depth = 1;
    let mut j = 0;
    while j < s.len() {
        if s[j..].starts_with("[[") {
            depth += 1;
            j += 2;
        } else if s[j..].starts_with("]]") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return Some(j);
            }
        } else {
            j += s[j..].chars().next().map_or(1, char::len_utf8);
        }
    }
    None
}

/// Splits a link at its first `|` outside nested links: (target, label).
fn split_label(inner: &str) -> (&str, Option<&str>) {
    let mut depth = 0usize;
    let b = inner.as_bytes();
    let mut j = 0;
    // Bytes, not chars: the markup is ASCII and never inside a multi-byte character.
    while j < b.len() {
        if b[j..].starts_with(b"[[") {
            depth += 1;
            j += 2;
        } else if b[j..].starts_with(b"]]") {
            depth = depth.saturating_sub(1);
            j += 2;
        } else {
            if b[j] == b'|' && depth == 0 {
                return (&inner[..j], Some(&inner[j + 1..]));
            }
            j += 1;
        }
    }
    (inner, None)
}

/// What a link shows in the text, None for links shown elsewhere or not at all: files, media
/// and categories (any local name), and interlanguage links (`[[de:…]]`, `[[fiu-vro:…]]`, also
/// empty ones).
/// File extensions of media: a `[[Prefix:Name.jpg|…]]` is a file whatever the prefix (old local
/// names such as `Bild:` or `Imagen:` that a dump's siteinfo does not list).
#[rustfmt::skip]
const MEDIA_EXTENSIONS: &[&str] = &[
    ".jpg", ".jpeg", ".png", ".gif", ".svg", ".tif", ".tiff", ".webp", ".ogg", ".ogv", ".oga",
    ".webm", ".pdf", ".djvu", ".mp3", ".wav", ".flac", ".mid", ".xcf",
];

fn is_media_name(target: &str) -> bool {
    let t = target.trim().to_ascii_lowercase();
    MEDIA_EXTENSIONS.iter().any(|e| t.ends_with(e))
}

fn link_text(inner: &str, ns: &Namespaces) -> Option<String> {
    // `[[:Category:X]]` and `[[:de:X]]` are ordinary links to those pages.
    let colon = inner.starts_with(':');
    let inner = inner.strip_prefix(':').unwrap_or(inner);
    let (target, label) = split_label(inner);
    let prefix = target.split_once(':').map(|(p, _)| p);
    if let Some(p) = prefix.filter(|_| !colon) {
        let code = crate::langcodes::canonical(p);
        match ns.key_of(p) {
            Some(FILE | CATEGORY | MEDIA) => return None,
            Some(_) => {}
            // The wiki's own code is a plain local link (`[[de:Berg|Berg]]` on the German one).
            None if code.is_some() && code != ns.language() => return None,
            None if is_media_name(&target[p.len() + 1..]) => return None,
            None => {}
        }
    }
    Some(match label {
        Some(l) if !l.trim().is_empty() => links(l, ns),
        // The pipe trick: `[[Paris (France)|]]` shows "Paris", `[[Seattle, Washington|]]`
        // "Seattle", `[[Help:Contents|]]` and `[[wikt:word|]]` without their prefix.
        Some(_) => {
            let t = prefix.map_or(target, |p| &target[p.len() + 1..]);
            let t = match t.find(" (") {
                Some(i) if t.trim_end().ends_with(')') => &t[..i],
                _ => t,
            };
            t.split(", ").next().unwrap_or(t).to_string()
        }
        None => target.to_string(),
    })
}

/// `[[target|text]]` → text, `[[target]]` → target; see `link_text` for what is removed.
fn links(s: &str, ns: &Namespaces) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let open = rest.find("[[");
        let stray = rest.find("]]").filter(|&j| open.is_none_or(|i| j < i));
        if let Some(j) = stray {
            // The end of a link whose start was cut away: markup, not text.
            out.push_str(&rest[..j]);
            rest = &rest[j + 2..];
            continue;
        }
        let Some(i) = open else { break };
        out.push_str(&rest[..i]);
        rest = &rest[i + 2..];
        let Some(end) = link_end(rest) else {
            return out;
        };
        if let Some(t) = link_text(&rest[..end - 2], ns) {
            out.push_str(&t);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// MediaWiki's own behaviour switches, which it accepts in any case (`__notoc__`).
#[rustfmt::skip]
const SWITCHES: &[&str] = &[
    "notoc", "forcetoc", "toc", "noeditsection", "newsectionlink", "nonewsectionlink",
    "nogallery", "hiddencat", "index", "noindex", "staticredirect", "nocontentconvert", "nocc",
    "notitleconvert", "notc", "disambig", "expectunusedcategory", "noglobal",
];

/// Removes behaviour switches: two underscores, a word of upper-case letters (any script) with
/// digits or single underscores, two underscores (`__NOTOC__`, `__KEINVERZEICHNIS__`,
/// `__БЕЗ_ОГЛАВЛЕНИЯ__`), and MediaWiki's own switches in any case (`__notoc__`).
fn magic_words(s: &str) -> String {
    let lower_switches = remove_lower_switches(s);
    upper_magic_words(&lower_switches)
}

fn remove_lower_switches(s: &str) -> String {
    if !s.contains("__") {
        return s.to_string();
    }
    let mut out = s.to_string();
    for w in SWITCHES {
        let pat = format!("__{w}__");
        while let Some(i) = out.to_ascii_lowercase().find(&pat) {
            out.replace_range(i..i + pat.len(), "");
        }
    }
    out
}

fn upper_magic_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("__") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let word_len: usize = after
            .char_indices()
            .find(|&(_, c)| {
                !(c == '_' || c.is_numeric() || (c.is_alphabetic() && !c.is_lowercase()))
            })
            .map_or(after.len(), |(k, _)| k);
        let word = &after[..word_len];
        // The word ends at the first "__" after at least one letter.
        let has_letter = |k: usize| word[..k].chars().any(char::is_alphabetic);
        match word
            .find("__")
            .filter(|&k| k > 0 && !word.starts_with('_') && has_letter(k))
        {
            Some(k) => rest = &after[k + 2..],
            None => {
                out.push_str("__");
                rest = after;
            }
        }
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
pub fn clean(text: &str, ns: &Namespaces) -> String {
    let s = remove_nested(text, "<!--", "-->");
    let s = remove_element(&s, "ref");
    let s = remove_element(&s, "gallery");
    let s = remove_nested(&s, "{{", "}}");
    let s = remove_nested(&s, "{|", "|}");
    let s = links(&s, ns);
    let s = external_links(&s);
    let s = magic_words(&s);
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

    fn clean(s: &str) -> String {
        super::clean(s, &Namespaces::default())
    }

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
        assert_eq!(
            categories(w, &Namespaces::default()),
            ["Living people", "Poets"]
        );
        assert!(is_disambiguation("Mercury (disambiguation)", ""));
        assert!(is_disambiguation(
            "Mercury",
            "'''Mercury''' may be:\n{{Disambiguation}}"
        ));
        assert!(!is_disambiguation("Mercury", "a planet"));
    }

    #[test]
    fn links_switches_and_interlanguage() {
        assert_eq!(
            clean("[[Paris (France)|]] and [[Help:Contents|]] [[:Category:Poets|poets]] __NOTOC__"),
            "Paris and Contents poets"
        );
        assert_eq!(
            clean("a __init__ b __ c __123__"),
            "a __init__ b __ c __123__"
        );
        assert_eq!(clean("x __notoc__ y __NoEditSection__"), "x y");
        assert_eq!(
            clean("[[Seattle, Washington|]] [[wikt:word|]]"),
            "Seattle word"
        );
        assert_eq!(
            redirect_target("#WEITERLEITUNG [[Berlin#Geschichte|x]]"),
            Some("Berlin#Geschichte".into())
        );
        assert_eq!(redirect_target("#REDIRECT:[[A]]"), Some("A".into()));
        assert_eq!(redirect_target("# [[A]] in a list"), None);
        assert!(is_disambiguation("Mitte", "x\n{{Begriffsklärung}}"));
        assert!(is_disambiguation("X", "{{Disambiguation|geo}}"));
        assert!(!is_disambiguation(
            "X",
            "x{{Disambiguation needed|date=2020}}"
        ));
        assert!(!is_disambiguation("X", "{{Dablink|y}}"));
        assert_eq!(
            clean("x [[simple:X]] [[nb:Y]] [[wikt:word|word]] [[zh-min-nan:]]"),
            "x word"
        );
        let ns = Namespaces::default();
        assert_eq!(
            langlinks(
                "[[de:Berg_hoch#x]] [[DE:Other]] [[sgs:Kalns]] [[:fr:Mont]]",
                &ns
            ),
            [
                ("de", "Other".to_string()),
                ("bat-smg", "Kalns".to_string())
            ]
        );
    }
}
