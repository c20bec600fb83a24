"""The offline family (SFT on traces): `arms` (Pair-SFT, STaR, teacher-error SFT: one training
function each), `traces` (the trace datasets they build, cached) and `sft` (TRL's SFTTrainer)."""
