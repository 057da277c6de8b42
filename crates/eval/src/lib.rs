//! Evaluation as sentence-transformers does it: metrics as pure functions (Pearson, Spearman,
//! nDCG, MRR, MAP, recall) and evaluators (STS, retrieval) that run an encoder over a data set.
