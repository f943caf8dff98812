"""The models the figures describe: each architecture as its config.json on the model card states it."""

from __future__ import annotations

from modeljob.core.jobs import Architecture, ModelShape, Precision

# --- models the published figures name (Llama 3.1 also the training runs) -------------------------

LLAMA31_8B = ModelShape(
    name="Llama-3.1-8B",
    parameters=8_030_261_248,
    architecture=Architecture(32, 4096, 32, kv_heads=8, vocab_size=128_256, intermediate_size=14_336),
)
LLAMA31_70B = ModelShape(
    name="Llama-3.1-70B",
    parameters=70_553_706_496,
    architecture=Architecture(80, 8192, 64, kv_heads=8, vocab_size=128_256, intermediate_size=28_672),
)
# 405B: the blog's KV row reproduces only with the release config's 16 KV heads (later set to 8).
LLAMA31_405B_RELEASE = ModelShape(
    name="Llama-3.1-405B",
    parameters=405_853_388_800,
    architecture=Architecture(126, 16_384, 128, kv_heads=16, vocab_size=128_256, intermediate_size=53_248),
)
LLAMA31_405B = ModelShape(
    name="Llama-3.1-405B",
    parameters=405_853_388_800,
    architecture=Architecture(126, 16_384, 128, kv_heads=8, vocab_size=128_256, intermediate_size=53_248),
)


def _qwen25(size: str, parameters: int, arch: Architecture) -> ModelShape:
    return ModelShape(name=f"Qwen2.5-{size}-Instruct", parameters=parameters, architecture=arch)


QWEN25_0_5B = _qwen25("0.5B", 494_032_768, Architecture(24, 896, 14, 2, None, 151_936, 4864))
QWEN25_3B = _qwen25("3B", 3_085_938_688, Architecture(36, 2048, 16, 2, None, 151_936, 11_008))
QWEN25_7B = _qwen25("7B", 7_615_616_512, Architecture(28, 3584, 28, 4, None, 152_064, 18_944))
QWEN25_14B = _qwen25("14B", 14_770_033_664, Architecture(48, 5120, 40, 8, None, 152_064, 13_824))
QWEN25_32B = _qwen25("32B", 32_763_876_352, Architecture(64, 5120, 40, 8, None, 152_064, 27_648))
QWEN25_72B = _qwen25("72B", 72_706_203_648, Architecture(80, 8192, 64, 8, None, 152_064, 29_568))

# Qwen (v1): multi-head attention; config.json's intermediate_size counts both gate and up
# projections (22016 for 7B), so the width of each is half of it.
QWEN_1_8B = ModelShape(
    name="Qwen-1.8B",
    parameters=1_836_828_672,
    architecture=Architecture(24, 2048, 16, 16, None, 151_936, 5504),
)
QWEN_7B = ModelShape(
    name="Qwen-7B",
    parameters=7_721_324_544,
    architecture=Architecture(32, 4096, 32, 32, None, 151_936, 11_008),
)
QWEN_14B = ModelShape(
    name="Qwen-14B",
    parameters=14_167_290_880,
    architecture=Architecture(40, 5120, 40, 40, None, 152_064, 13_696),
)
QWEN_72B = ModelShape(
    name="Qwen-72B",
    parameters=72_287_920_128,
    architecture=Architecture(80, 8192, 64, 64, None, 152_064, 24_576),
)

MIXTRAL_8X7B = ModelShape(
    name="Mixtral-8x7B",
    parameters=46_702_792_704,
    active_parameters=12_879_921_152,
    architecture=Architecture(32, 4096, 32, kv_heads=8, vocab_size=32_000, intermediate_size=14_336),
)
LLAMA_65B = ModelShape(
    name="LLaMA-65B",
    parameters=65_285_660_672,
    architecture=Architecture(80, 8192, 64, vocab_size=32_000, intermediate_size=22_016),
)
GPT3_175B = ModelShape(
    name="GPT-3 175B", parameters=175 * 10**9, architecture=Architecture(96, 12_288, 96, vocab_size=50_257)
)
LLAMA_33B = ModelShape(
    name="LLaMA-33B",
    parameters=32_528_943_616,
    architecture=Architecture(60, 6656, 52, vocab_size=32_000, intermediate_size=17_920),
)
# Parameter counts only, as the DeepSpeed memory docs and the ZeRO paper give them.
T5_3B = ModelShape(name="t5-3b", parameters=2_851_000_000)
GPT2_1_5B = ModelShape(name="GPT-2 1.5B", parameters=1_500_000_000, precision=Precision.FP16)

# --- models only the measured training runs name --------------------------------------------------

LLAMA2_7B = ModelShape(
    name="Llama-2-7b",
    parameters=6_738_415_616,
    architecture=Architecture(32, 4096, 32, kv_heads=32, vocab_size=32_000, intermediate_size=11_008),
)
LLAMA2_70B = ModelShape(
    name="Llama-2-70b",
    parameters=68_976_648_192,
    architecture=Architecture(80, 8192, 64, kv_heads=8, vocab_size=32_000, intermediate_size=28_672),
)
# Tied input/output embeddings (tie_word_embeddings: true); head_dim 128 = 3072 / 24.
LLAMA32_3B = ModelShape(
    name="Llama-3.2-3B",
    parameters=3_212_749_824,
    architecture=Architecture(28, 3072, 24, kv_heads=8, vocab_size=128_256, intermediate_size=8192),
)
# Encoder-only, GELU MLP (not gated), 2-way classification head: no vocabulary-sized logits.
# 335,141,888 for BertModel + 2,050 for the classifier.
BERT_LARGE_CLS = ModelShape(
    name="bert-large-uncased (sequence classification)",
    parameters=335_143_938,
    precision=Precision.FP32,
    architecture=Architecture(24, 1024, 16, vocab_size=30_522, intermediate_size=4096),
)
# BLOOM: GELU MLP (not gated), ALiBi, fused query_key_value; loaded in fp32 by the PEFT script.
BLOOMZ_7B1 = ModelShape(
    name="bloomz-7b1",
    parameters=7_069_016_064,
    precision=Precision.FP32,
    architecture=Architecture(30, 4096, 32, vocab_size=250_880, intermediate_size=16_384),
)


def with_precision(model: ModelShape, precision: Precision) -> ModelShape:
    return ModelShape(
        name=model.name,
        parameters=model.parameters,
        precision=precision,
        active_parameters=model.active_parameters,
        architecture=model.architecture,
    )
