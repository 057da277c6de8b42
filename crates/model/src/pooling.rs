//! Pooling token embeddings into one sentence embedding, as sentence-transformers' `Pooling`
//! module does, each mode respecting the attention mask; and L2 normalisation.

use crate::error::{read_json, Error, Result};
use candle_core::{DType, Tensor, D};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over tokens with mask 1 (special tokens included).
    Mean,
    /// The first token (`[CLS]` / `<s>`).
    Cls,
    /// Element-wise max over tokens with mask 1.
    Max,
    /// Sum over tokens with mask 1, divided by the square root of their count.
    MeanSqrtLen,
}

impl<'de> Deserialize<'de> for Pooling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Pooling::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("pooling \"{s}\" is not one of {}", Pooling::NAMES))
        })
    }
}

impl Pooling {
    pub fn parse(s: &str) -> Option<Pooling> {
        Some(match s {
            "mean" => Pooling::Mean,
            "cls" => Pooling::Cls,
            "max" => Pooling::Max,
            "mean_sqrt_len_tokens" | "mean_sqrt_len" => Pooling::MeanSqrtLen,
            _ => return None,
        })
    }

    /// The modes a user can name, for error messages.
    pub const NAMES: &'static str = "mean, cls, max, mean_sqrt_len_tokens";

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
        }
    }

    /// Reads `1_Pooling/config.json` in either spelling: the classic boolean flags
    /// (sentence-transformers 2.x/3.x) or `pooling_mode` (6.x).
    pub fn load(path: &Path) -> Result<Pooling> {
        #[derive(Deserialize)]
        struct Raw {
            pooling_mode: Option<String>,
            #[serde(default)]
            pooling_mode_cls_token: bool,
            #[serde(default)]
            pooling_mode_mean_tokens: bool,
            #[serde(default)]
            pooling_mode_max_tokens: bool,
            #[serde(default)]
            pooling_mode_mean_sqrt_len_tokens: bool,
            #[serde(default)]
            pooling_mode_weightedmean_tokens: bool,
            #[serde(default)]
            pooling_mode_lasttoken: bool,
        }
        let raw: Raw = read_json(path)?;
        if let Some(mode) = raw.pooling_mode {
            return Pooling::parse(&mode).ok_or_else(|| {
                Error::invalid(path, format!("unsupported pooling_mode \"{mode}\""))
            });
        }
        if raw.pooling_mode_weightedmean_tokens || raw.pooling_mode_lasttoken {
            return Err(Error::invalid(
                path,
                "weighted-mean and last-token pooling are not supported",
            ));
        }
        let set: Vec<Pooling> = [
            (raw.pooling_mode_cls_token, Pooling::Cls),
            (raw.pooling_mode_mean_tokens, Pooling::Mean),
            (raw.pooling_mode_max_tokens, Pooling::Max),
            (raw.pooling_mode_mean_sqrt_len_tokens, Pooling::MeanSqrtLen),
        ]
        .into_iter()
        .filter_map(|(on, p)| on.then_some(p))
        .collect();
        match set.as_slice() {
            [p] => Ok(*p),
            [] => Err(Error::invalid(path, "no pooling mode is enabled")),
            _ => Err(Error::invalid(
                path,
                "several pooling modes at once (concatenated) are not supported",
            )),
        }
    }

    /// `include_prompt` of `1_Pooling/config.json` (sentence-transformers 2.4+): false when the
    /// prompt's tokens are left out of pooling. Absent: true.
    pub fn load_include_prompt(path: &Path) -> Result<bool> {
        let v: serde_json::Value = read_json(path)?;
        match &v["include_prompt"] {
            serde_json::Value::Null => Ok(true),
            serde_json::Value::Bool(b) => Ok(*b),
            other => Err(Error::invalid(
                path,
                format!("include_prompt is {other}, not true or false"),
            )),
        }
    }

    /// As `apply`, leaving out each row's first `prompt_lengths[r]` tokens (its prompt, the
    /// leading special token included), as sentence-transformers' pooling does with
    /// `include_prompt = false`: they are zeroed in the mask, and CLS pooling takes the first
    /// token after them.
    pub fn apply_without_prompt(
        self,
        tokens: &Tensor,
        mask: &Tensor,
        prompt_lengths: &[u32],
    ) -> Result<Tensor> {
        let (b, l, h) = tokens.dims3()?;
        if prompt_lengths.len() != b {
            return Err(Error::Unsupported(format!(
                "{} prompt lengths for a batch of {b}",
                prompt_lengths.len()
            )));
        }
        if self == Pooling::Cls {
            let first: Vec<u32> = prompt_lengths
                .iter()
                .enumerate()
                .map(|(r, &p)| (r * l + if (p as usize) < l { p as usize } else { 0 }) as u32)
                .collect();
            let idx = Tensor::from_vec(first, b, tokens.device())?;
            return Ok(tokens.reshape((b * l, h))?.index_select(&idx, 0)?);
        }
        let keep: Vec<f32> = prompt_lengths
            .iter()
            .flat_map(|&p| (0..l).map(move |i| if i < p as usize { 0.0 } else { 1.0 }))
            .collect();
        let keep = Tensor::from_vec(keep, (b, l), tokens.device())?;
        self.apply(tokens, &(mask.to_dtype(DType::F32)? * keep)?)
    }

    /// `tokens`: [B, L, H]; `mask`: [B, L] of 0/1 in any dtype. Returns [B, H].
    pub fn apply(self, tokens: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let m = mask.to_dtype(tokens.dtype())?.unsqueeze(D::Minus1)?; // [B, L, 1]
        Ok(match self {
            Pooling::Cls => tokens.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum = tokens.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
                let count = if self == Pooling::Mean {
                    count
                } else {
                    count.sqrt()?
                };
                sum.broadcast_div(&count)?
            }
            Pooling::Max => {
                // Padded positions are pushed to -1e9 first, as sentence-transformers does.
                let fill = ((m.ones_like()? - &m)? * -1e9)?;
                tokens.broadcast_mul(&m)?.broadcast_add(&fill)?.max(1)?
            }
        })
    }
}

/// `x / max(‖x‖₂, 1e-12)` row-wise, as `torch.nn.functional.normalize`.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    Ok(x.broadcast_div(&norm)?)
}

/// Pads token-id rows to the longest with `pad_id`; returns ids [B, L] (u32) and mask [B, L]
/// (f32), on `device`.
pub fn pad_batch(
    rows: &[&[u32]],
    pad_id: u32,
    multiple_of: usize,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let mut l = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
    if multiple_of > 1 {
        l = l.div_ceil(multiple_of) * multiple_of;
    }
    let mut ids = Vec::with_capacity(rows.len() * l);
    let mut mask = Vec::with_capacity(rows.len() * l);
    for r in rows {
        ids.extend_from_slice(r);
        ids.extend(std::iter::repeat_n(pad_id, l - r.len()));
        mask.extend(std::iter::repeat_n(1f32, r.len()));
        mask.extend(std::iter::repeat_n(0f32, l - r.len()));
    }
    let b = rows.len();
    Ok((
        Tensor::from_vec(ids, (b, l), device)?,
        Tensor::from_vec(mask, (b, l), device)?.to_dtype(DType::F32)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two rows of three tokens of dimension 2; row 1's last token is padding and holds a value
    /// that would win every mode if the mask were ignored.
    fn tokens() -> (Tensor, Tensor) {
        let t = Tensor::new(
            &[
                [[1f32, -2.], [3., 0.], [-1., 4.]],
                [[2., 2.], [0., -4.], [100., 100.]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let m = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &Device::Cpu).unwrap();
        (t, m)
    }

    fn rows(t: Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap()
    }

    #[test]
    fn every_mode_respects_the_mask() {
        let (t, m) = tokens();
        assert_eq!(
            rows(Pooling::Mean.apply(&t, &m).unwrap()),
            [[1.0, 2.0 / 3.0], [1.0, -1.0]]
        );
        assert_eq!(
            rows(Pooling::Cls.apply(&t, &m).unwrap()),
            [[1.0, -2.0], [2.0, 2.0]]
        );
        assert_eq!(
            rows(Pooling::Max.apply(&t, &m).unwrap()),
            [[3.0, 4.0], [2.0, 2.0]]
        );
        let s = rows(Pooling::MeanSqrtLen.apply(&t, &m).unwrap());
        assert!((s[1][0] - 2.0 / 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn normalize_gives_unit_rows_and_keeps_zero_rows_finite() {
        let x = Tensor::new(&[[3f32, 4.], [0., 0.]], &Device::Cpu).unwrap();
        assert_eq!(rows(l2_normalize(&x).unwrap()), [[0.6, 0.8], [0.0, 0.0]]);
    }

    #[test]
    fn reads_both_pooling_config_spellings() {
        let dir = std::env::temp_dir().join(format!("pt-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        std::fs::write(
            &p,
            r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": true,
            "pooling_mode_mean_tokens": false}"#,
        )
        .unwrap();
        assert_eq!(Pooling::load(&p).unwrap(), Pooling::Cls);
        std::fs::write(&p, r#"{"embedding_dimension": 4, "pooling_mode": "max"}"#).unwrap();
        assert_eq!(Pooling::load(&p).unwrap(), Pooling::Max);
        std::fs::write(&p, r#"{"pooling_mode": "weird"}"#).unwrap();
        assert!(Pooling::load(&p).unwrap_err().to_string().contains("weird"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
