//! Where each loss comes from, for the model card: (key, title, authors, year, where: an arXiv id,
//! or a URL / DOI for papers outside arXiv).

pub type Citation = (&'static str, &'static str, &'static str, u32, &'static str);

pub const MATRYOSHKA: Citation = (
    "kusupati2022matryoshka",
    "Matryoshka Representation Learning",
    "Aditya Kusupati and Gantavya Bhatt and Aniket Rege and Matthew Wallingford and Aditya Sinha \
     and Vivek Ramanujan and William Howard-Snyder and Kaifeng Chen and Sham Kakade and Prateek \
     Jain and Ali Farhadi",
    2022,
    "2205.13147",
);

pub const GIST: Citation = (
    "solatorio2024gistembed",
    "GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding Fine-tuning",
    "Aivin V. Solatorio",
    2024,
    "2402.16829",
);

pub const ANGLE: Citation = (
    "li-li-2024-aoe",
    "AoE: Angle-optimized Embeddings for Semantic Textual Similarity",
    "Xianming Li and Jing Li",
    2024,
    "https://aclanthology.org/2024.acl-long.101/",
);

pub const COSENT: Citation = (
    "huang2024cosent",
    "CoSENT: Consistent Sentence Embedding via Similarity Ranking",
    "Xiang Huang and Hao Peng and Dongcheng Zou and Zhiwei Liu and Jianxin Li and Kay Liu and Jia \
     Wu and Jianlin Su and Philip S. Yu",
    2024,
    "https://doi.org/10.1109/TASLP.2024.3402087",
);

pub const MARGIN_MSE: Citation = (
    "hofstaetter2020marginmse",
    "Improving Efficient Neural Ranking Models with Cross-Architecture Knowledge Distillation",
    "Sebastian Hofstätter and Sophia Althammer and Michael Schröder and Mete Sertkan and Allan \
     Hanbury",
    2020,
    "2010.02666",
);

pub const TRIPLET: Citation = (
    "hermans2017triplet",
    "In Defense of the Triplet Loss for Person Re-Identification",
    "Alexander Hermans and Lucas Beyer and Bastian Leibe",
    2017,
    "1703.07737",
);

pub const GRADCACHE: Citation = (
    "gao2021gradcache",
    "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup",
    "Luyu Gao and Yunyi Zhang and Jiawei Han and Jamie Callan",
    2021,
    "2101.06983",
);
