//! Training: the losses (one file each, named as sentence-transformers names them), AdamW with
//! warmup/decay and clipping, the training loop, checkpoints and resume.
