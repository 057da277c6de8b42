//! The language codes of Wikipedia editions, as interlanguage links and the `langlinks` table
//! write them (`[[de:…]]`, `ll_lang = 'fiu-vro'`). A link prefix that is one of these (and not a
//! namespace of the wiki) is an interlanguage link: MediaWiki shows it beside the article, never
//! in its text.
//!
//! Codes are the wikis' database names without `wiki` (`zh_min_nanwiki` → `zh-min-nan`), so that
//! a dump's own language and the codes of its links compare equal; the newer ISO spellings that
//! MediaWiki also accepts as prefixes (`sgs` for `bat-smg`, `nb` for `no`) map onto them.

/// Every Wikipedia edition's code (open and closed ones: old dumps link to both), sorted.
#[rustfmt::skip]
const CODES: &[&str] = &[
    "aa", "ab", "ace", "ady", "af", "ak", "als", "alt", "am", "ami", "an", "ang", "anp", "ar",
    "arc", "ary", "arz", "as", "ast", "atj", "av", "avk", "awa", "ay", "az", "azb", "ba", "ban",
    "bar", "bat-smg", "bbc", "bcl", "bdr", "be", "be-x-old", "bew", "bg", "bh", "bi", "bjn", "blk",
    "bm", "bn", "bo", "bpy", "br", "bs", "btm", "bug", "bxr", "ca", "cbk-zam", "cdo", "ce", "ceb",
    "ch", "cho", "chr", "chy", "ckb", "co", "cr", "crh", "cs", "csb", "cu", "cv", "cy", "da",
    "dag", "de", "dga", "din", "diq", "dsb", "dtp", "dty", "dv", "dz", "ee", "el", "eml", "en",
    "eo", "es", "et", "eu", "ext", "fa", "fat", "ff", "fi", "fiu-vro", "fj", "fo", "fon", "fr",
    "frp", "frr", "fur", "fy", "ga", "gag", "gan", "gcr", "gd", "gl", "glk", "gn", "gom", "gor",
    "got", "gpe", "gu", "guc", "gur", "guw", "gv", "ha", "hak", "haw", "he", "hi", "hif", "ho",
    "hr", "hsb", "ht", "hu", "hy", "hyw", "hz", "ia", "iba", "id", "ie", "ig", "igl", "ii", "ik",
    "ilo", "inh", "io", "is", "it", "iu", "ja", "jam", "jbo", "jv", "ka", "kaa", "kab", "kbd",
    "kbp", "kcg", "kg", "kge", "ki", "kj", "kk", "kl", "km", "kn", "knc", "ko", "koi", "kr", "krc",
    "ks", "ksh", "ku", "kus", "kv", "kw", "ky", "la", "lad", "lb", "lbe", "lez", "lfn", "lg", "li",
    "lij", "lld", "lmo", "ln", "lo", "lrc", "lt", "ltg", "lv", "mad", "mai", "map-bms", "mdf",
    "mg", "mh", "mhr", "mi", "min", "mk", "ml", "mn", "mni", "mnw", "mo", "mos", "mr", "mrj", "ms",
    "mt", "mus", "mwl", "my", "myv", "mzn", "na", "nah", "nap", "nds", "nds-nl", "ne", "new", "ng",
    "nia", "nl", "nn", "no", "nov", "nqo", "nr", "nrm", "nso", "nup", "nv", "ny", "oc", "olo",
    "om", "or", "os", "pa", "pag", "pam", "pap", "pcd", "pcm", "pdc", "pfl", "pi", "pih", "pl",
    "pms", "pnb", "pnt", "ps", "pt", "pwn", "qu", "rm", "rmy", "rn", "ro", "roa-rup", "roa-tara",
    "rsk", "ru", "rue", "rw", "sa", "sah", "sat", "sc", "scn", "sco", "sd", "se", "sg", "sh",
    "shi", "shn", "si", "simple", "sk", "skr", "sl", "sm", "smn", "sn", "so", "sq", "sr", "srn",
    "ss", "st", "stq", "su", "sv", "sw", "syl", "szl", "szy", "ta", "tay", "tcy", "tdd", "te",
    "tet", "tg", "th", "ti", "tig", "tk", "tl", "tly", "tn", "to", "tpi", "tr", "trv", "ts", "tt",
    "tum", "tw", "ty", "tyv", "udm", "ug", "uk", "ur", "uz", "ve", "vec", "vep", "vi", "vls", "vo",
    "wa", "war", "wo", "wuu", "xal", "xh", "xmf", "yi", "yo", "za", "zea", "zgh", "zh",
    "zh-classical", "zh-min-nan", "zh-yue", "zu",
];

/// Other prefixes MediaWiki accepts for an edition, and the code they stand for.
const ALIASES: &[(&str, &str)] = &[
    ("be-tarask", "be-x-old"),
    ("cz", "cs"),
    ("dk", "da"),
    ("jp", "ja"),
    ("lzh", "zh-classical"),
    ("minnan", "zh-min-nan"),
    ("nan", "zh-min-nan"),
    ("nb", "no"),
    ("rup", "roa-rup"),
    ("sgs", "bat-smg"),
    ("vro", "fiu-vro"),
    ("yue", "zh-yue"),
    ("zh-cn", "zh"),
    ("zh-tw", "zh"),
];

/// The edition a link prefix or `ll_lang` names (case-insensitive, `_` as `-`), if any.
pub fn canonical(prefix: &str) -> Option<&'static str> {
    let p = prefix.trim().to_ascii_lowercase().replace('_', "-");
    if let Ok(i) = CODES.binary_search(&p.as_str()) {
        return Some(CODES[i]);
    }
    ALIASES.iter().find(|(a, _)| *a == p).map(|(_, c)| *c)
}

/// The code of a wiki from its database name (`dewiki` → `de`, `zh_min_nanwiki` → `zh-min-nan`).
pub fn from_dbname(dbname: &str) -> Option<&'static str> {
    canonical(dbname.trim().strip_suffix("wiki")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_and_resolve() {
        assert!(
            CODES.windows(2).all(|w| w[0] < w[1]),
            "CODES must stay sorted"
        );
        for (a, c) in ALIASES {
            assert!(CODES.contains(c), "{a} → {c}");
        }
        assert_eq!(canonical("DE"), Some("de"));
        assert_eq!(canonical("sgs"), Some("bat-smg"));
        assert_eq!(canonical("fiu_vro"), Some("fiu-vro"));
        // Interwiki prefixes to other projects are not editions.
        for p in [
            "wikt", "w", "s", "q", "d", "m", "mw", "commons", "meta", "File",
        ] {
            assert_eq!(canonical(p), None, "{p}");
        }
        assert_eq!(from_dbname("zh_min_nanwiki"), Some("zh-min-nan"));
        assert_eq!(from_dbname("ltgwiki"), Some("ltg"));
        assert_eq!(from_dbname("enwiktionary"), None);
    }
}
