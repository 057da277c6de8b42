//! What a loss takes from each row: how many texts and how many scores. A row of another shape
//! is a bad row (an error naming file:line, or a counted skip under `--on-bad-row skip`), caught
//! where it is read rather than as a wrong tensor shape in the middle of a step.

use crate::row::{Problem, Row, WRONG_SHAPE};

#[derive(Clone, Debug, PartialEq)]
pub struct RowShape {
    /// The loss, for the message (`CoSENTLoss`).
    pub loss: &'static str,
    /// Texts a row must have: at least `min_texts`, at most `max_texts`.
    pub min_texts: usize,
    pub max_texts: usize,
    pub scores: Scores,
}

/// The scores a loss needs per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scores {
    /// None needed (any scores a row has are ignored).
    Ignored,
    /// Exactly this many.
    Exactly(usize),
    /// MarginMSE: one per hard negative (the margins), or one more (the positive's score, then
    /// each negative's).
    Margins,
}

impl RowShape {
    /// Rows of texts only, as the ranking losses take them.
    pub fn texts(loss: &'static str, min_texts: usize) -> Self {
        Self {
            loss,
            min_texts,
            max_texts: usize::MAX,
            scores: Scores::Ignored,
        }
    }

    /// Scored pairs: two texts and one score (CoSENT, AnglE, CosineSimilarity).
    pub fn scored_pair(loss: &'static str) -> Self {
        Self {
            loss,
            min_texts: 2,
            max_texts: 2,
            scores: Scores::Exactly(1),
        }
    }

    /// MarginMSE: a query, a positive, hard negatives, and their margins or scores.
    pub fn margins(loss: &'static str) -> Self {
        Self {
            loss,
            min_texts: 3,
            max_texts: usize::MAX,
            scores: Scores::Margins,
        }
    }

    pub fn check(&self, row: &Row) -> Result<(), Problem> {
        let (t, s) = (row.texts.len(), row.scores.len());
        let bad = |msg: String| Err(Problem::new(WRONG_SHAPE, msg));
        if t < self.min_texts || t > self.max_texts {
            let want = if self.min_texts == self.max_texts {
                format!("{}", self.min_texts)
            } else if self.max_texts == usize::MAX {
                format!("at least {}", self.min_texts)
            } else {
                format!("{} to {}", self.min_texts, self.max_texts)
            };
            return bad(format!(
                "{} takes rows of {want} texts; this row has {t}",
                self.loss
            ));
        }
        match self.scores {
            Scores::Ignored => Ok(()),
            Scores::Exactly(n) if s == n => Ok(()),
            Scores::Exactly(n) => bad(format!(
                "{} takes {n} score{} per row (a \"score\"/\"label\" field, a number after the \
                 texts, or a score column); this row has {s}",
                self.loss,
                if n == 1 { "" } else { "s" }
            )),
            Scores::Margins if s == t - 2 || s == t - 1 => Ok(()),
            Scores::Margins => bad(format!(
                "{} takes, for a row of {t} texts (query, positive, {} negative{}), {} margin{} \
                 or {} scores (positive, then each negative); this row has {s}",
                self.loss,
                t - 2,
                if t == 3 { "" } else { "s" },
                t - 2,
                if t == 3 { "" } else { "s" },
                t - 1
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(texts: usize, scores: &[f32]) -> Row {
        Row::new(
            (0..texts).map(|i| format!("t{i}")).collect(),
            scores.to_vec(),
        )
    }

    #[test]
    fn shapes_accept_and_reject() {
        let pair = RowShape::scored_pair("CoSENTLoss");
        assert!(pair.check(&row(2, &[0.5])).is_ok());
        let e = pair.check(&row(2, &[])).unwrap_err();
        assert!(e.msg.contains("CoSENTLoss takes 1 score per row"), "{e}");
        assert!(pair
            .check(&row(3, &[0.5]))
            .unwrap_err()
            .msg
            .contains("of 2 texts"));

        let m = RowShape::margins("MarginMSELoss");
        assert!(m.check(&row(3, &[1.5])).is_ok());
        assert!(m.check(&row(3, &[9.0, 7.5])).is_ok());
        assert!(m.check(&row(4, &[1.0, 2.0])).is_ok());
        assert!(m.check(&row(4, &[9.0, 1.0, 2.0])).is_ok());
        let e = m.check(&row(3, &[1.0, 2.0, 3.0])).unwrap_err();
        assert!(e.msg.contains("1 margin or 2 scores"), "{e}");
        assert!(m
            .check(&row(2, &[1.0]))
            .unwrap_err()
            .msg
            .contains("at least 3"));

        assert!(RowShape::texts("TripletLoss", 3)
            .check(&row(2, &[]))
            .is_err());
        assert!(RowShape::texts("TripletLoss", 3)
            .check(&row(3, &[1.0]))
            .is_ok());
    }
}
