//! Prompts per column (sentence-transformers' trainer `prompts`): text put before each input of a
//! column, e.g. `query: ` before anchors and `passage: ` before positives, as the E5 and BGE
//! models were trained. Columns are named by position, as sentence-transformers' losses read
//! them: 0 `anchor`, 1 `positive`, 2 and after `negative`. The rows keep their texts; the
//! tokenizer adds the prompt, so deduplication and duplicate masking compare texts without it.

/// Column names a prompt can be given for, in column order.
pub const COLUMNS: [&str; 3] = ["anchor", "positive", "negative"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnPrompts {
    pub anchor: Option<String>,
    pub positive: Option<String>,
    /// Every hard-negative column's.
    pub negative: Option<String>,
}

impl ColumnPrompts {
    /// The same prompt for every column.
    pub fn all(p: &str) -> Self {
        Self {
            anchor: Some(p.into()),
            positive: Some(p.into()),
            negative: Some(p.into()),
        }
    }

    /// Sets column `name`'s prompt; an error names the known columns.
    pub fn set(&mut self, name: &str, p: String) -> Result<(), String> {
        let slot = match name {
            "anchor" => &mut self.anchor,
            "positive" => &mut self.positive,
            "negative" => &mut self.negative,
            other => {
                return Err(format!(
                    "no column \"{other}\" (columns are named by position: {})",
                    COLUMNS.join(", ")
                ))
            }
        };
        *slot = Some(p);
        Ok(())
    }

    /// The prompt of column `c` (0 anchors, 1 positives, 2.. negatives).
    pub fn get(&self, c: usize) -> Option<&str> {
        match c {
            0 => self.anchor.as_deref(),
            1 => self.positive.as_deref(),
            _ => self.negative.as_deref(),
        }
    }

    /// These prompts, falling back to `other`'s for the columns these leave unset.
    pub fn or(&self, other: &ColumnPrompts) -> ColumnPrompts {
        ColumnPrompts {
            anchor: self.anchor.clone().or_else(|| other.anchor.clone()),
            positive: self.positive.clone().or_else(|| other.positive.clone()),
            negative: self.negative.clone().or_else(|| other.negative.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.anchor.is_none() && self.positive.is_none() && self.negative.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_by_position_and_fallback() {
        let mut p = ColumnPrompts::default();
        p.set("anchor", "query: ".into()).unwrap();
        assert!(p
            .set("query", "x".into())
            .unwrap_err()
            .contains("anchor, positive, negative"));
        let all = ColumnPrompts::all("passage: ");
        let merged = p.or(&all);
        assert_eq!(merged.get(0), Some("query: "));
        assert_eq!(merged.get(1), Some("passage: "));
        assert_eq!(merged.get(4), Some("passage: "));
        assert_eq!(p.get(1), None);
    }
}
