"""Each fast op against its readable reference (``companion.ops.reference``), in float64:
outputs and gradients, every chunk length and odd lengths, with and without decay."""

import pytest
import torch

from companion.ops import (
    causal_conv_direct,
    causal_depthwise_conv,
    chunked_linear_attention,
    fft_conv,
    linear_attention_recurrence,
)
from companion.ops.chunked import default_chunk


def operands(length, shared, decay, batch=2, heads=3, d_k=4, d_v=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    kh = 1 if shared else heads

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    q, k, v = (
        rand(batch, kh, length, d_k),
        rand(batch, kh, length, d_k),
        rand(batch, heads, length, d_v),
    )
    # log Λ in (−3, 0): decays from e^{−3} ≈ 0.05 to 1, as Mamba-2's
    a = (-3 * torch.rand(batch, heads, length, generator=g, dtype=torch.float64)).requires_grad_()
    return q, k, v, (a if decay else None)


@pytest.mark.parametrize("decay", [False, True], ids=["no-decay", "decay"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-head", "shared-qk"])
@pytest.mark.parametrize("length", [1, 63, 64, 65, 200, 300])
@pytest.mark.parametrize("chunk", [1, 7, 16, 32, 64, 128, 256, None])
def test_chunked_linear_attention_equals_the_recurrence(chunk, length, shared, decay):
    q, k, v, a = operands(length, shared, decay)
    y = chunked_linear_attention(q, k, v, a, chunk=chunk)
    y_ref = linear_attention_recurrence(q, k, v, None if a is None else a.exp())
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y)
    inputs = [t for t in (q, k, v, a) if t is not None]
    grads = torch.autograd.grad(y, inputs, g)
    grads_ref = torch.autograd.grad(y_ref, inputs, g)
    for got, want in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_default_chunk_grows_with_the_head_sizes_within_bounds():
    assert default_chunk(8, 16) == 16 and default_chunk(32, 16) == 16
    assert default_chunk(64, 128) == 32 and default_chunk(4096, 4096) == 128
    assert default_chunk(1, 1) == 16
    assert default_chunk(32, 16, length=256) == 16  # the quick profile's runs are unchanged


def test_long_sequences_take_the_chunk_the_sweep_found_best():
    """The paper profile's shapes (``make bench``'s sweep): 64 up to h = 21.3, 128 from 32."""
    for d_k, d_v, length in [(16, 128, 1024), (64, 32, 2048), (16, 32, 2048), (64, 32, 4096)]:
        assert default_chunk(d_k, d_v, length) == 64
    for d_k, d_v, length in [(64, 64, 1024), (64, 128, 1024), (512, 64, 1024), (128, 128, 512)]:
        assert default_chunk(d_k, d_v, length) == 128
    assert default_chunk(1, 1, 4096) == 64 and default_chunk(4096, 4096, 4096) == 128


@pytest.mark.parametrize("length", [1, 7, 64, 65])
@pytest.mark.parametrize("complex_kernel", [False, True], ids=["real", "complex"])
def test_fft_conv_equals_the_direct_convolution(length, complex_kernel):
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 3, length, generator=g, dtype=torch.float64, requires_grad=True)
    kernel = torch.randn(3, length, generator=g, dtype=torch.float64)
    if complex_kernel:
        kernel = torch.complex(kernel, torch.randn(3, length, generator=g, dtype=torch.float64))
    kernel.requires_grad_()
    y, y_ref = fft_conv(u, kernel), causal_conv_direct(u, kernel)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g_out = torch.randn_like(y)
    for got, want in zip(
        torch.autograd.grad(y, (u, kernel), g_out),
        torch.autograd.grad(y_ref, (u, kernel), g_out),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("length", [1, 2, 7, 64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_causal_depthwise_conv_equals_torch_conv1d(length, batch, dtype):
    """The channel-last convolution and its backward against ``F.conv1d`` on the left-padded,
    transposed input in float64 (lengths below the kernel size included); in float32 (the
    oneDNN kernel training uses on the CPU) to float32 rounding."""
    g = torch.Generator().manual_seed(2)
    channels, taps = 48, 4
    x = torch.randn(batch, length, channels, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(channels, taps, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(channels, generator=g, dtype=torch.float64, requires_grad=True)
    y = causal_depthwise_conv(x.to(dtype), weight, bias)
    padded = torch.nn.functional.pad(x.transpose(1, 2), (taps - 1, 0))
    y_ref = torch.nn.functional.conv1d(padded, weight[:, None], bias, groups=channels)
    y_ref = y_ref.transpose(1, 2)
    assert y.is_contiguous() and y.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol)
    g_out = torch.randn_like(y_ref)
    for got, want in zip(
        torch.autograd.grad(y, (x, weight, bias), g_out.to(dtype)),
        torch.autograd.grad(y_ref, (x, weight, bias), g_out),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * length * batch)


def test_the_chunk_sweep_times_every_chunk_and_marks_the_chosen_one():
    from companion.bench import bench_chunks, chunk_shapes

    shapes = chunk_shapes()
    assert {"quick/mqar/mamba2", "paper/text/linear"} <= {
        run for s in shapes for run in s["runs"].split()
    }
    # quick shapes as make reproduce trains them: the run's batch, one thread; paper: B = 8
    quick = next(s for s in shapes if "quick/lm/mamba2" in s["runs"].split())
    paper = next(s for s in shapes if "paper/text/mamba2" in s["runs"].split())
    assert (quick["B"], quick["threads"], quick["L"]) == (16, 1, 256)
    assert (paper["B"], paper["threads"], paper["L"]) == (8, 0, 4096)
    small = [
        dict(B=b, L=40, H=2, d_k=4, d_v=8, shared=shared, threads=t, runs="")
        for b, shared, t in ((3, False, 1), (1, True, 0))
    ]
    threads = torch.get_num_threads()
    rows = bench_chunks(small, chunks=(16, 32, 64))
    assert torch.get_num_threads() == threads  # restored after a one-thread shape
    for row in rows:
        assert row["T16_ms"] > 0 and row["T32_ms"] > 0
        assert row["T64_ms"] is not None  # 64 > L: the whole sequence as one chunk
        assert row["chosen"] == 16 and row["best"] in (16, 32, 40)
        assert row["chosen_over_best"] >= 1.0 and row["best_ms"] > 0


def test_the_paper_mixers_are_timed_as_their_runs_build_them():
    from companion.bench import bench_mixers_at, mixer_shapes

    shapes = mixer_shapes("paper")
    runs = [run for s in shapes for run in s["runs"]]
    assert len(runs) == len(set(runs)) == 30  # every main run of the paper profile, once
    text = next(s for s in shapes if "paper/text/mamba2" in s["runs"])
    shown = {k: text[k] for k in ("mixer", "L", "d_model", "H", "N", "options")}
    assert shown == dict(mixer="mamba2", L=4096, d_model=128, H=4, N=64, options="conv=4")
    rows = bench_mixers_at(mixer_shapes("smoke")[:2])
    assert [r["runs"] for r in rows] == [" ".join(s["runs"]) for s in mixer_shapes("smoke")[:2]]
    assert all(r["fast_ms"] > 0 and r["tokens_per_s"] > 0 for r in rows)
