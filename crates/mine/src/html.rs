//! StackExchange post bodies (HTML) to plain text: tags removed, block elements become line
//! breaks, code is kept as text, entities decoded, whitespace runs collapsed.

/// Decodes HTML character references: the common named ones and numeric ones.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..].find(|c: char| c == ';' || c == '&' || c.is_whitespace());
        let decoded = match end {
            Some(j) if rest.as_bytes()[j + 1] == b';' && j <= 10 => {
                let name = &rest[1..j + 1];
                let c = if let Some(num) = name.strip_prefix('#') {
                    let v = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    v.and_then(char::from_u32)
                } else {
                    named(name)
                };
                c.map(|c| (c, j + 2))
            }
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn named(n: &str) -> Option<char> {
    Some(match n {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "times" => '×',
        "middot" => '·',
        "bull" => '•',
        "euro" => '€',
        "pound" => '£',
        _ => return None,
    })
}

const BLOCKS: &[&str] = &[
    "p",
    "br",
    "div",
    "li",
    "ul",
    "ol",
    "pre",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "tr",
    "td",
    "th",
    "dd",
    "dt",
];

/// Plain text of an HTML fragment.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        text.push_str(&rest[..i]);
        rest = &rest[i..];
        // A tag is '<' then a letter, '/' or '!'; anything else is a literal '<'.
        let is_tag = rest[1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '!');
        match rest.find('>') {
            Some(j) if is_tag => {
                let tag = rest[1..j].trim_start_matches('/');
                let name: String = tag
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                if BLOCKS.contains(&name.as_str()) {
                    text.push('\n');
                }
                rest = &rest[j + 1..];
            }
            _ => {
                text.push('<');
                rest = &rest[1..];
            }
        }
    }
    text.push_str(rest);
    collapse(&decode_entities(&text))
}

/// Whitespace runs become one space, or one line break if they contain one; ends trimmed.
pub fn collapse(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Option<char> = None;
    for c in s.chars() {
        if c.is_whitespace() {
            if c == '\n' || pending.is_none() {
                pending = Some(if c == '\n' { '\n' } else { ' ' });
            }
        } else {
            if let Some(p) = pending.take() {
                if !out.is_empty() {
                    out.push(p);
                }
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_entities_code_and_whitespace() {
        let h = "<p>Use <code>a &lt; b</code> &amp; more&hellip;</p>\n\n<pre><code>x = 1;\ny = 2;\n</code></pre><p>5 < 6 &#39;ok&#x27; &bogus; R&D</p>";
        assert_eq!(
            html_to_text(h),
            "Use a < b & more…\nx = 1;\ny = 2;\n5 < 6 'ok' &bogus; R&D"
        );
        assert_eq!(html_to_text("<p>a</p><p>b</p>"), "a\nb");
        assert_eq!(html_to_text("  <i>x</i>   y "), "x y");
    }
}
