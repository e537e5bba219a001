#!/usr/bin/env bash
# GPU check of issue 14 on one CUDA device, in under 8 minutes: CUDA vs CPU parity (fp32; bf16 within 5e-2),
# sdpa / flex_attention / flash_attention_2, padding-free (packed) embedding batches, v2-50M pretraining
# throughput at 2,048 tokens with MFU (goal >= 40% bf16), and nt embed tokens/s vs the AutoModel loop.
# Prints a table; writes gpu_check.json to $OUT when set (else benchmarks/perf/results/).
#
#   bash benchmarks/perf/gpu_check.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/perf/gpu_check.sh --cpu-dry-run   # every part on CPU at tiny sizes (script check only)
#
# flash-attn: installed from a prebuilt wheel only (FLASH_ATTN_INSTALL=1, 2 minutes at most); with no wheel
# for this torch/CUDA, or no registry reachable, the flash_attention_2 part is skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
if [ "${FLASH_ATTN_INSTALL:-0}" = "1" ] && [ "${1:-}" != "--cpu-dry-run" ]; then
    timeout 120 "$PYTHON" -m pip install --quiet --only-binary=:all: flash-attn \
        || echo "flash-attn: no prebuilt wheel installed; flash_attention_2 will be skipped" >&2
fi
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'devices', torch.cuda.device_count())"
exec timeout 460 "$PYTHON" -m benchmarks.perf.gpu_check "$@"
