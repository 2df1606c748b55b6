"""Which of the network's CPU operations give other bits on another CPU (issue "same seed, same result").

    python scripts/kernel_fingerprint.py

Runs each operation DFFN trains with (the convolutions with and without oneDNN, BatchNorm, the endmember
module's linear layers at several pixel counts, the loss's reductions) once on fixed random inputs and
prints a short hash of each result. Run it on two machines, or on one with ``ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2`` set, and compare: a differing hash is an operation whose order of sums depends
on the CPU. Two threads, as on the project's CI machines.
"""
import hashlib
import time

import torch


def digest(t: torch.Tensor) -> str:
    return hashlib.md5(t.detach().contiguous().numpy().tobytes()).hexdigest()[:8]


def main():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rows = []
    for pixels in (4900, 9025, 22500):
        Y1 = torch.rand(156, pixels)
        layer = torch.nn.Linear(pixels, 100)
        out = layer(Y1)
        out.sum().backward()
        rows.append((f"linear {pixels} -> 100, forward / weight gradient", f"{digest(out)} / {digest(layer.weight.grad)}"))
    x = torch.rand(1, 156, 95, 95, requires_grad=True)
    first, second = torch.nn.Conv2d(156, 128, 5, padding=2), torch.nn.Conv2d(128, 64, 5, padding=2)
    for onednn in (True, False):
        x.grad = None
        first.zero_grad()
        with torch.backends.mkldnn.flags(enabled=onednn):
            out = second(first(x))
            (out * out).sum().backward()
            hashes = f"{digest(out)} / {digest(first.weight.grad)} / {digest(x.grad)}"
            t0 = time.perf_counter()
            for _ in range(3):    # timed after the first pass (the one hashed), which sets the kernels up
                again = second(first(x))
                (again * again).sum().backward()
            seconds = (time.perf_counter() - t0) / 3
        rows.append((f"convolutions {'with' if onednn else 'without'} oneDNN, forward / weight / input gradient "
                     f"({seconds:.2f} s a pass)", hashes))
    for bands in (56, 64, 156, 224, 285, 425):      # the development scenes' band counts, on a small image
        x = torch.rand(1, bands, 40, 40, requires_grad=True)
        conv = torch.nn.Conv2d(bands, 128, 5, padding=2)
        out = conv(x)
        (out * out).sum().backward()
        rows.append((f"convolution {bands} -> 128 bands with oneDNN, forward / weight / input gradient",
                     f"{digest(out)} / {digest(conv.weight.grad)} / {digest(x.grad)}"))
    maps = torch.rand(1, 128, 95, 95)
    rows.append(("BatchNorm2d, training mode", digest(torch.nn.BatchNorm2d(128)(maps))))
    a, b = torch.rand(156, 9025), torch.rand(156, 9025)
    rows.append(("cosine similarity / mean / column sums",
                 f"{digest(torch.nn.functional.cosine_similarity(a, b, dim=0))} / {digest(a.mean())} / {digest(a.sum(0))}"))
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for name, value in rows:
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
