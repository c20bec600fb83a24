"""Why RL and SFT differ, measured (issue 23): one module per mechanism, each a pure function of
saved records or weights, so every number in metrics.json can be recomputed from a run directory.

- `behaviours`:        how each second attempt revised its first (the task's `revision_behaviour`
                       labels), their shares and entropy on wrong and on right first attempts;
                       tracked at every validation point (history.jsonl) and on the test set.
- `calibration`:       the policy's own probability of its first attempt as its confidence (Brier,
                       ECE, AUROC for first-attempt correctness) and the revise decision
                       (P(answer changes | y1 wrong) vs | y1 right, and its AUROC).
- `self_conditioning`: the second attempt on first attempts with k = 1, 2, 3 injected errors, and
                       revision over turns 2-4 on one injected error (`self_conditioning.jsonl`).
- `sparsity`:          θ_kept − θ_base per tensor and overall, in fp32 and bf16, at several
                       tolerances; effective rank of each matrix's update; overlap of updated sets.
"""
