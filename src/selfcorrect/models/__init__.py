"""The model layer: where a policy's weights come from and how it generates.

  policy          the one policy wrapper (batched two-turn generation, token log-probs, save/load)
  loading         where base weights come from (tiny | hf | gguf) and opening a policy from them
  tiny_model      the embedded testbeds' base model (pretraining loop, cached)
  gguf_model      GGUF → cached HF checkpoint (SmolLM2)
  char_tokenizer  character-level HF tokenizer with a chat template
  gpt2_decoding   transformers' `generate` for GPT-2 models, without its per-step overhead
  vllm_engine     the vLLM generation engine for real models, with weight sync
  lora            LoRA adapters for both families (`model.lora`)
  prompts         the one prompt builder (chat messages from x, attempts, revise instruction)
"""
