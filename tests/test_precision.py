"""precision "auto": bfloat16 only where the hardware computes in it."""

from keras_dcgan.config import TrainConfig
from keras_dcgan.precision import cpu_bf16_flags, resolve_precision

EPYC_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"


def test_auto_is_the_default():
    assert TrainConfig().precision == "auto"


def test_auto_trains_in_bfloat16_where_the_cpu_has_it():
    assert cpu_bf16_flags(EPYC_FLAGS) == ("avx512_bf16",)
    policy, why = resolve_precision("auto", cpu_info=EPYC_FLAGS, gpu=False)
    assert policy == "mixed_bfloat16" and "avx512_bf16" in why


def test_auto_keeps_float32_where_bfloat16_would_be_emulated():
    policy, why = resolve_precision("auto", cpu_info=AVX2_ONLY, gpu=False)
    assert policy == "float32" and "slower" in why
    assert resolve_precision("auto", cpu_info="", gpu=False)[0] == "float32"  # nothing known: the safe choice


def test_a_gpu_with_bfloat16_wins_and_an_explicit_choice_is_kept():
    assert resolve_precision("auto", cpu_info=AVX2_ONLY, gpu=True)[0] == "mixed_bfloat16"
    assert resolve_precision("mixed_bfloat16", cpu_info=AVX2_ONLY, gpu=False)[0] == "mixed_bfloat16"
    assert resolve_precision("float32", cpu_info=EPYC_FLAGS, gpu=True)[0] == "float32"
