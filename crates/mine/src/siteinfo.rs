//! What a pages-articles dump says about its wiki in `<siteinfo>`: the database name (hence the
//! language) and the local names of its namespaces. Wikis write links with their own names
//! (`[[Kategorie:…]]`, `[[Fichier:…]]`, `[[Kategoreja:…]]`); MediaWiki also accepts the
//! canonical English names everywhere, so both are recognized.

use crate::io::{open_input, MineError, Result};
use quick_xml::events::Event;
use quick_xml::XmlVersion;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const MEDIA: i32 = -2;
pub const FILE: i32 = 6;
pub const CATEGORY: i32 = 14;

/// MediaWiki's canonical names, valid on every wiki whatever its language, and the old aliases
/// MediaWiki core still accepts.
const CANONICAL: &[(i32, &str)] = &[
    (-2, "Media"),
    (-1, "Special"),
    (1, "Talk"),
    (2, "User"),
    (3, "User talk"),
    (4, "Project"),
    (5, "Project talk"),
    (6, "File"),
    (6, "Image"),
    (7, "File talk"),
    (7, "Image talk"),
    (8, "MediaWiki"),
    (9, "MediaWiki talk"),
    (10, "Template"),
    (11, "Template talk"),
    (12, "Help"),
    (13, "Help talk"),
    (14, "Category"),
    (15, "Category talk"),
];

/// Older local names of the file namespace that MediaWiki still accepts but a dump's siteinfo
/// does not list (from MediaWiki's message files), by edition.
const OLD_LOCAL_NAMES: &[(&str, i32, &str)] = &[
    ("ca", 6, "Imatge"),
    ("da", 6, "Billede"),
    ("de", 6, "Bild"),
    ("es", 6, "Imagen"),
    ("fi", 6, "Kuva"),
    ("hu", 6, "Kép"),
    ("id", 6, "Gambar"),
    ("it", 6, "Immagine"),
    ("ja", 6, "画像"),
    ("lv", 6, "Attēls"),
    ("nl", 6, "Afbeelding"),
    ("no", 6, "Bilde"),
    ("pl", 6, "Grafika"),
    ("pt", 6, "Imagem"),
    ("ru", 6, "Изображение"),
    ("sv", 6, "Bild"),
    ("tr", 6, "Resim"),
    ("uk", 6, "Зображення"),
    ("zh", 6, "图像"),
    ("zh", 6, "圖像"),
];

/// Namespace names → keys, compared as MediaWiki does (case-insensitive, `_` as space).
#[derive(Clone, Debug)]
pub struct Namespaces {
    by_name: HashMap<String, i32>,
    /// Every recognized name per key, the dump's own first: what `--lang-report` shows.
    names: BTreeMap<i32, Vec<String>>,
    /// The wiki's own edition: `[[de:X]]` on the German Wikipedia is a local link.
    language: Option<&'static str>,
}

fn fold(name: &str) -> String {
    name.trim().replace('_', " ").to_lowercase()
}

impl Default for Namespaces {
    /// The canonical names only (a dump without siteinfo).
    fn default() -> Self {
        let mut ns = Self::empty();
        for (k, n) in CANONICAL {
            ns.add(*k, n);
        }
        ns
    }
}

impl Namespaces {
    fn empty() -> Self {
        Self {
            by_name: HashMap::new(),
            names: BTreeMap::new(),
            language: None,
        }
    }

    /// The wiki's own edition code, when known.
    pub fn language(&self) -> Option<&'static str> {
        self.language
    }

    fn add(&mut self, key: i32, name: &str) {
        let name = name.trim();
        if name.is_empty() || self.by_name.contains_key(&fold(name)) {
            return;
        }
        self.by_name.insert(fold(name), key);
        self.names.entry(key).or_default().push(name.to_string());
    }

    /// The namespace a link or title prefix names.
    pub fn key_of(&self, prefix: &str) -> Option<i32> {
        self.by_name.get(&fold(prefix)).copied()
    }

    /// The namespace of a page title (`Kategorie:Berg` → 14; `Foo: bar` → 0 unless `Foo` is
    /// a namespace).
    pub fn of_title(&self, title: &str) -> i32 {
        title
            .split_once(':')
            .and_then(|(p, _)| self.key_of(p))
            .unwrap_or(0)
    }

    /// Every recognized name of a namespace, the dump's own first.
    pub fn names(&self, key: i32) -> &[String] {
        self.names.get(&key).map_or(&[], Vec::as_slice)
    }

    /// Keys with names, in order.
    pub fn keys(&self) -> impl Iterator<Item = i32> + '_ {
        self.names.keys().copied()
    }
}

/// The siteinfo of a dump.
#[derive(Clone, Debug, Default)]
pub struct SiteInfo {
    pub dbname: Option<String>,
    /// The edition's code (`de`, `fiu-vro`): from the database name, else the root element's
    /// `xml:lang`, else the host of `<base>`.
    pub language: Option<String>,
    pub namespaces: Namespaces,
    /// False when the dump had no `<siteinfo>` (canonical names only).
    pub declared: bool,
}

fn language_of(dbname: Option<&str>, xml_lang: Option<&str>, base: Option<&str>) -> Option<String> {
    // Another project (enwiktionary, dewikisource): not a Wikipedia edition.
    if dbname.is_some_and(|d| !d.ends_with("wiki")) {
        return None;
    }
    if let Some(code) = dbname.and_then(crate::langcodes::from_dbname) {
        return Some(code.to_string());
    }
    if let Some(l) = dbname.and_then(|d| d.strip_suffix("wiki")) {
        // A wiki newer than the code list: its database name still says the code.
        if !l.is_empty() {
            return Some(l.replace('_', "-"));
        }
    }
    let host = base
        .and_then(|b| b.split("://").nth(1))
        .and_then(|h| h.split('.').next());
    xml_lang
        .or(host)
        .map(|l| crate::langcodes::canonical(l).map_or_else(|| l.to_string(), str::to_string))
}

/// Reads the siteinfo at the head of a dump (bzip2 or plain XML); stops at the first page.
pub fn read(dump: &Path) -> Result<SiteInfo> {
    let input = open_input(dump, Vec::new())?;
    let mut r = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::with_capacity(1 << 12);
    let (mut dbname, mut base, mut xml_lang) = (None, None, None);
    let mut field: Option<&'static str> = None;
    let mut key: Option<i32> = None;
    let mut text = String::new();
    let mut declared = false;
    let bad = |at: u64, msg: String| MineError::Bad {
        path: dump.to_path_buf(),
        at: format!("byte {at} of the decompressed stream"),
        msg,
    };
    // The dump's own names go first, so that reports show them before the canonical ones.
    let mut own: Vec<(i32, String)> = Vec::new();
    loop {
        let ev = r.read_event_into(&mut buf).map_err(|e| {
            bad(
                r.error_position(),
                format!("malformed XML in the siteinfo: {e}"),
            )
        })?;
        match ev {
            Event::Start(e) => match e.name().as_ref() {
                "mediawiki" => {
                    if let Ok(Some(a)) = e.try_get_attribute("xml:lang") {
                        xml_lang = a
                            .normalized_value(XmlVersion::Implicit1_0)
                            .ok()
                            .map(|v| v.into_owned());
                    }
                }
                "siteinfo" => declared = true,
                "dbname" => field = Some("dbname"),
                "base" => field = Some("base"),
                "namespace" => {
                    field = Some("namespace");
                    key = e
                        .try_get_attribute("key")
                        .ok()
                        .flatten()
                        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok())
                        .and_then(|v| v.trim().parse().ok());
                }
                "page" => break,
                _ => {}
            },
            Event::Text(t) if field.is_some() => {
                text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
            }
            Event::GeneralRef(g) if field.is_some() => {
                if let Ok(Some(c)) = g.resolve_char_ref() {
                    text.push(c);
                } else if g.as_ref() == "amp" {
                    text.push('&');
                }
            }
            Event::End(e) => {
                match (e.name().as_ref(), field) {
                    ("dbname", Some("dbname")) => dbname = Some(text.trim().to_string()),
                    ("base", Some("base")) => base = Some(text.trim().to_string()),
                    ("namespace", Some("namespace")) => {
                        if let Some(k) = key {
                            own.push((k, text.trim().to_string()));
                        }
                    }
                    ("siteinfo", _) => break,
                    _ => {}
                }
                field = None;
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let language = language_of(dbname.as_deref(), xml_lang.as_deref(), base.as_deref());
    let mut ns = Namespaces::empty();
    let code = language.as_deref().and_then(crate::langcodes::canonical);
    ns.language = code;
    let old = OLD_LOCAL_NAMES
        .iter()
        .filter(|(l, _, _)| Some(*l) == code)
        .map(|(_, k, n)| (*k, *n));
    for (k, n) in own
        .iter()
        .map(|(k, n)| (*k, n.as_str()))
        .chain(old)
        .chain(CANONICAL.iter().copied())
    {
        ns.add(k, n);
    }
    Ok(SiteInfo {
        language,
        dbname,
        namespaces: ns,
        declared,
    })
}

impl SiteInfo {
    /// What `mine wikipedia --lang-report` prints: the language and the names recognized for
    /// the namespaces that decide what is an article, a category and a file.
    pub fn report(&self) -> String {
        let mut s = format!(
            "language: {} (dbname {})\n",
            self.language.as_deref().unwrap_or("unknown"),
            self.dbname.as_deref().unwrap_or("not given"),
        );
        if !self.declared {
            s +=
                "no <siteinfo> in the dump: only the canonical English namespace names are known\n";
        }
        for (what, key) in [("categories", CATEGORY), ("files", FILE), ("media", MEDIA)] {
            s += &format!("{what}: {}\n", self.namespaces.names(key).join(", "));
        }
        let others: Vec<String> = self
            .namespaces
            .keys()
            .filter(|k| ![CATEGORY, FILE, MEDIA].contains(k))
            .map(|k| format!("{k} {}", self.namespaces.names(k).join("/")))
            .collect();
        s += &format!("other namespaces (not articles): {}\n", others.join(", "));
        s
    }
}
