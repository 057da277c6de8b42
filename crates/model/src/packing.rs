//! Unpadded ("packed", variable-length) batches: the real tokens of every sequence one after
//! another, [1, T, H] for T real tokens, with the offsets where each sequence starts, as
//! flash-attention's varlen interface (`cu_seqlens`) and ModernBERT's unpadding lay them out.
//! The linear layers, norms and activations then spend nothing on padding, and attention
//! (`ops::attention` with a packing) stays within each sequence. Embeddings are computed on the
//! padded batch and packed after; the encoder's output is unpacked again (zeros at padding), so
//! pooling and everything after the encoder see the padded layout they always did.

use candle_core::{Result, Tensor};

/// The packing an encoder runs a batch with `mask` [B, L] in: packed on the CPU unless
/// `cfg.padded` asks for padding. A GPU keeps padded batches until it has a packed attention
/// kernel (the op boundary takes the packed layout already).
pub fn for_batch(cfg: &crate::ModelConfig, mask: &Tensor) -> Result<Option<Packing>> {
    if cfg.padded || !mask.device().is_cpu() {
        return Ok(None);
    }
    Packing::of_mask(mask)
}

/// `x` [B, L, H] as the layers of a rotary encoder take it: packed when `for_batch` packs the
/// batch, with the packing and the position within its text of each row (for the rotary tables).
pub fn enter(
    cfg: &crate::ModelConfig,
    mask: &Tensor,
    x: Tensor,
) -> Result<(Tensor, Option<Packing>, Vec<usize>)> {
    Ok(match for_batch(cfg, mask)? {
        Some(pk) => {
            let positions = pk.positions();
            (pk.pack(&x)?, Some(pk), positions)
        }
        None => {
            let l = x.dim(1)?;
            (x, None, (0..l).collect())
        }
    })
}

/// How a padded batch [B, L] packs.
#[derive(Clone, Debug)]
pub struct Packing {
    /// B + 1 offsets: sequence `b` is packed rows `offsets[b]..offsets[b + 1]`.
    offsets: Vec<usize>,
    /// The padded length L: bias tables and dropout masks keep their padded layout.
    max_len: usize,
    /// u32 [T]: the row of each packed token in the padded batch flattened to [B·L].
    gather: Tensor,
    /// u32 [B·L]: the packed row of each padded position, T (a row of zeros) for padding.
    scatter: Tensor,
}

impl Packing {
    /// The packing of `mask` [B, L] (1 = real token). None where packing would not pay or not
    /// apply: no padding at all, a row with no real token, or a row whose real tokens are not
    /// a prefix (left padding; position-dependent layers would see other positions).
    pub fn of_mask(mask: &Tensor) -> Result<Option<Self>> {
        let (b, l) = mask.dims2()?;
        let rows = mask.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
        let mut offsets = Vec::with_capacity(b + 1);
        offsets.push(0);
        for row in &rows {
            let n = row.iter().take_while(|&&m| m != 0.0).count();
            if n == 0 || row[n..].iter().any(|&m| m != 0.0) {
                return Ok(None);
            }
            offsets.push(offsets.last().copied().unwrap_or(0) + n);
        }
        let t = offsets[b];
        if t == b * l {
            return Ok(None);
        }
        let mut gather = Vec::with_capacity(t);
        let mut scatter = vec![t as u32; b * l];
        for (bi, w) in offsets.windows(2).enumerate() {
            for (i, packed) in (w[0]..w[1]).enumerate() {
                gather.push((bi * l + i) as u32);
                scatter[bi * l + i] = packed as u32;
            }
        }
        let dev = mask.device();
        Ok(Some(Self {
            gather: Tensor::from_vec(gather, t, dev)?,
            scatter: Tensor::from_vec(scatter, b * l, dev)?,
            offsets,
            max_len: l,
        }))
    }

    /// B + 1 offsets: sequence `b` is packed rows `offsets()[b]..offsets()[b + 1]`.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// The padded length L the packing came from.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// T, the number of real tokens.
    pub fn tokens(&self) -> usize {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// B, the number of sequences.
    pub fn sequences(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The position within its sequence of each packed token (for rotary tables).
    pub fn positions(&self) -> Vec<usize> {
        self.offsets
            .windows(2)
            .flat_map(|w| 0..w[1] - w[0])
            .collect()
    }

    /// [B, L, H] → [1, T, H]: the real tokens. Differentiable.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let flat = x.reshape((b * l, h))?;
        flat.index_select(&self.gather, 0)?.unsqueeze(0)
    }

    /// [1, T, H] → [B, L, H] with zeros at padding. Differentiable.
    pub fn unpack(&self, x: &Tensor) -> Result<Tensor> {
        let (_, t, h) = x.dims3()?;
        let zero = Tensor::zeros((1, h), x.dtype(), x.device())?;
        let rows = Tensor::cat(&[&x.reshape((t, h))?, &zero], 0)?;
        let out = rows.index_select(&self.scatter, 0)?;
        out.reshape((self.sequences(), self.max_len, h))
    }
}
