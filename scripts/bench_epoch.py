"""Time one training epoch of the DFFN network on a Samson-sized input (156 bands, 95 x 95, P=3)
in float32, float32 channels-last and bfloat16 autocast; prints the median seconds per epoch.

    python scripts/bench_epoch.py [--repeats 5] [--bf16-repeats 1]
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dffn_qgis.core.run.device import cpu_has_native_bf16  # noqa: E402
from dffn_qgis.core.method.model import DFFN, dffn_loss  # noqa: E402


def time_epochs(mode: str, repeats: int) -> float:
    torch.manual_seed(0)
    L, H, W, P = 156, 95, 95, 3
    Y, x = torch.rand(L, H * W), torch.rand(1, L, H, W)
    net = DFFN(L, P, H * W)
    if mode == "channels_last":
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    times = []
    for i in range(repeats + 1):                       # the first epoch warms up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bfloat16"):
            A, Y1, E = net(x)
        loss = dffn_loss(Y, A, Y1, E)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bf16-repeats", type=int, default=1, help="bfloat16 is very slow without native units")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_native_bf16()}")
    for mode, n in (("float32", args.repeats), ("channels_last", args.repeats), ("bfloat16", args.bf16_repeats)):
        print(f"{mode:14s} {time_epochs(mode, n):.3f} s per epoch (median of {n})", flush=True)


if __name__ == "__main__":
    main()
