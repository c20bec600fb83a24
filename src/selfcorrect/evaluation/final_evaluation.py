"""The final evaluation of a run on the fixed test problems, in one place.

`final_evaluation(spec, task, base, result, policy, paper_policy, base_sha256)` measures the kept
policy (the one checkpoint rule, `selfcorrect.training.selection`) with the whole protocol, reading
what the arm trained on from its result (`training.arms.ArmResult`: probe sets, error histogram,
extra metrics, the paper's choice), in this order:

1. the base model's greedy first attempts on the test problems (`base_first_attempts`, cached per
   base model: the same for every arm of a seed), the offline set of the mismatch probe and the
   `base` sites of the correction matrix;
2. the policy's greedy two-turn episodes and every metric of `metrics.summarize`, with the
   mismatch probe on the base's first attempts and on the sets the arm trained on
   (`evaluate.evaluate_policy`);
3. for SFT on teacher traces, the total-variation distance between the teacher's error kinds and
   sites and the policy's own first-attempt errors;
4. the correction matrix (`correction_matrix`): second attempts on controlled first attempts at the
   base's error sites, the policy's own error sites and random sites;
5. the first-attempt ablation (`y1_ablation`): turn 2 shown another problem's, the base's or no first
   attempt, against the policy's own (does y2 read y1?);
6. self-conditioning (`mechanisms.self_conditioning`): second attempts after k = 1, 2, 3 injected
   errors, and revision over turns 2-4;
7. the update's sparsity and effective rank (`mechanisms.sparsity`: kept policy − base, from the
   weights; per tensor in sparsity.json);
8. the paper's checkpoint (`paper_policy`, when the paper's rule kept another step): its test
   episodes and the table metrics, as the secondary table's row.

Nothing here writes files; `write_final` puts the records beside metrics.json (written last).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from selfcorrect.evaluation.correction_matrix import correction_matrix, matrix_line
from selfcorrect.evaluation.evaluate import EvalResult, OfflineAttempts, evaluate_policy, write_eval
from selfcorrect.evaluation.mechanisms import self_conditioning as conditioning
from selfcorrect.evaluation.mechanisms import sparsity
from selfcorrect.evaluation.metrics import total_variation
from selfcorrect.evaluation.y1_ablation import FILE as ABLATION_FILE
from selfcorrect.evaluation.y1_ablation import ablation_line, y1_ablation
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import timing
from selfcorrect.runtime.cache import cached_artifact
from selfcorrect.runtime.records import read_json, write_json, write_jsonl
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.base import Task

TABLE_FIELDS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate")
SECONDARY_FILE = "paper_checkpoint_generations.jsonl"


@dataclass
class FinalEvaluation:
    result: EvalResult
    matrix_records: list[dict] = field(default_factory=list)
    self_conditioning_records: list[dict] = field(default_factory=list)
    y1_ablation_records: list[dict] = field(default_factory=list)
    sparsity: dict | None = None  # `mechanisms.sparsity.update_sparsity` of the kept policy (per tensor: sparsity.json)
    secondary_records: list[dict] = field(default_factory=list)


def final_evaluation(spec: "RunSpec", task: Task, base: Policy, result: "ArmResult",  # noqa: F821
                     policy: Policy, paper_policy: Policy | None, base_sha256: str) -> FinalEvaluation:
    """The whole protocol on the kept `policy` (and `paper_policy`, the paper's checkpoint when it is
    another); `result` is the arm's (`training.arms.ArmResult`), `base` the frozen base policy."""
    ev, seed = spec.eval, spec.seed
    problems = task.problems(ev.split, ev.n_problems, seed=ev.problem_seed)
    sampling = Sampling(ev.temperature, ev.max_new_tokens)
    matrix, ablation = ev.correction_matrix, ev.y1_ablation
    use_matrix = matrix is not None and matrix.enabled
    use_ablation = ablation is not None and ablation.enabled and len(problems) >= 2
    base_first = None
    if ev.probe_source == "base" or use_matrix or use_ablation:
        with timing.stage("base_first"):
            base_first = base_first_attempts(spec, base, base_sha256, problems, sampling)
    offline = ([OfflineAttempts("base", problems, base_first)] if ev.probe_source == "base" else []) + list(result.offline)
    with timing.stage("final_eval"):  # the probe's episodes inside are stage `probe`
        measured = evaluate_policy(policy, problems, sampling, seed=seed, offline=offline)
    m = measured.metrics
    if result.extra_metrics:
        m["arm"] = result.extra_metrics
    if result.offline_error_hist is not None:
        m["offline_error_tv"] = total_variation(result.offline_error_hist, m["errors_t1"])
    out = FinalEvaluation(measured)
    own_first = [r["y1"] for r in measured.records]
    if use_matrix:  # second attempts on controlled first attempts
        with timing.stage("matrix"):
            summary, out.matrix_records = correction_matrix(policy, task, problems, base_first, sampling,
                                                            seed=ev.problem_seed, n_problems=matrix.n_problems,
                                                            own_first_attempts=own_first)
        m["correction_matrix"] = summary
        print(f"[correction matrix skipped] {summary['skipped']}" if "skipped" in summary else matrix_line(summary), flush=True)
    if use_ablation:  # does y2 read y1: turn 2 shown another problem's, the base's or no first attempt
        with timing.stage("y1_ablation"):
            summary, out.y1_ablation_records = y1_ablation(policy, task, problems, own_first, [r["y2"] for r in measured.records],
                                                           base_first, sampling, seed=ev.problem_seed, n_problems=ablation.n_problems)
        m["y1_ablation"] = summary
        print(ablation_line(summary), flush=True)
    if policy is not base:  # how sparse, and how low-rank, the kept update is (from the weights)
        with timing.stage("sparsity"):
            out.sparsity = sparsity.update_sparsity(base.model.state_dict(), policy.model.state_dict())
        m.update(sparsity.summary(out.sparsity))
    sc = ev.self_conditioning
    if sc is not None and sc.enabled:  # revisions after several injected errors, and over turns 2-4
        with timing.stage("self_conditioning"):
            summary, out.self_conditioning_records = conditioning.self_conditioning(
                policy, task, problems, sampling, seed=ev.problem_seed, n_problems=sc.n_problems,
                max_errors=sc.max_errors, turns=sc.turns)
        m["self_conditioning"] = summary
    errors = make_error_model(task)
    if errors is not None:  # where the policy's own first attempts err
        own_sites = errors.site_histogram(problems, own_first)
        m["errors_t1_sites"] = own_sites
        teacher_sites = result.extra_metrics.get("train_site_hist")
        if teacher_sites:  # sft_teacher: TV between the teacher's error sites and the model's own
            m["offline_site_tv"] = total_variation(teacher_sites, own_sites)
    if paper_policy is not None:  # the paper's rule kept another checkpoint: the secondary table's row
        with timing.stage("paper_eval"):
            paper = evaluate_policy(paper_policy, problems, sampling, seed=seed)
        out.secondary_records = paper.records
        m["paper_checkpoint"] = {k: paper.metrics[k] for k in TABLE_FIELDS}
    elif result.paper_choice is not None:  # the same checkpoint: the secondary row is the primary one
        m["paper_checkpoint"] = {k: m[k] for k in TABLE_FIELDS}
    return out


def write_final(run_dir: Path, fe: FinalEvaluation) -> None:
    """The records first, metrics.json last (its presence marks a complete run)."""
    if fe.matrix_records:
        write_jsonl(run_dir / "correction_matrix.jsonl", fe.matrix_records)
    if fe.sparsity is not None:
        write_json(run_dir / sparsity.FILE, fe.sparsity, indent=1)
    if fe.self_conditioning_records:
        write_jsonl(run_dir / conditioning.FILE, fe.self_conditioning_records)
    if fe.y1_ablation_records:
        write_jsonl(run_dir / ABLATION_FILE, fe.y1_ablation_records)
    if fe.secondary_records:
        write_jsonl(run_dir / SECONDARY_FILE, fe.secondary_records)
    write_eval(run_dir, fe.result)


def base_first_attempts(spec: "RunSpec", base: Policy, base_sha256: str, problems, sampling: Sampling) -> list[str]:  # noqa: F821
    """The base model's greedy first attempts on the test problems: the same for every arm of a
    seed, so computed once and cached by the base weights' hash and everything that picks the
    problems and decodes them."""
    ev = spec.eval
    key = {"version": 1, "base_weights_sha256": base_sha256, "task": spec.task,
            "split": ev.split, "n_problems": len(problems), "problem_seed": ev.problem_seed,
            "temperature": sampling.temperature, "max_new_tokens": sampling.max_new_tokens}

    def build(out: Path) -> dict:
        episodes = base.two_turn(problems, sampling, seed=ev.problem_seed, n_turns=1)
        write_json(out / "first_attempts.json", {"ids": [p.id for p in problems], "y1": [ep.y1 for ep in episodes]})
        return {"n": len(episodes)}

    saved = read_json(cached_artifact(spec.cache_dir, "base_first", key, build) / "first_attempts.json")
    if saved["ids"] != [p.id for p in problems]:
        raise RuntimeError(f"cached base first attempts are for other problems than {ev.split!r} n={len(problems)}")
    return saved["y1"]
