"""Which Keras dtype policy `precision: auto` trains with on this machine.

bfloat16 pays only where the hardware multiplies in it: on CPUs with AVX512_BF16 or AMX
(oneDNN's bf16 convolution and matmul kernels) and on GPUs of compute capability 8.0 and
up. Measured with benchmarks/throughput.py, the default networks train at about 1.5x the
float32 images/s on an AMD EPYC with AVX512_BF16 and no AMX (docs/digits.md), and 1.76x on a
Xeon with AMX. Elsewhere bfloat16 is emulated and slower than float32, so `auto` picks float32.
"""

import pathlib

CPU_INFO = pathlib.Path("/proc/cpuinfo")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_GPU_COMPUTE_CAPABILITY = (8, 0)


def cpu_bf16_flags(cpu_info=None):
    """The bfloat16 instruction-set flags this CPU reports (Linux /proc/cpuinfo; none where it cannot be read)."""
    if cpu_info is None:
        try:
            cpu_info = CPU_INFO.read_text()
        except OSError:
            return ()
    flags = set()
    for line in cpu_info.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def gpu_has_bf16():
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= BF16_GPU_COMPUTE_CAPABILITY:
            return True
    return False


def resolve_precision(precision, cpu_info=None, gpu=None):
    """(policy name, why) for a config's precision: "auto" becomes mixed_bfloat16 where bf16 is native, else float32."""
    if precision != "auto":
        return precision, "asked for"
    if gpu if gpu is not None else gpu_has_bf16():
        return "mixed_bfloat16", f"auto: a GPU of compute capability {'.'.join(map(str, BF16_GPU_COMPUTE_CAPABILITY))} or more"
    flags = cpu_bf16_flags(cpu_info)
    if flags:
        return "mixed_bfloat16", f"auto: the CPU has {', '.join(flags)}"
    return "float32", "auto: no bfloat16 arithmetic on this CPU (no AVX512_BF16 nor AMX), where bfloat16 would be slower"
