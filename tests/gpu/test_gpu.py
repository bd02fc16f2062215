"""What only a GPU can check (`make test-gpu`; every test skips on a machine without CUDA, and `make test` hides the
GPU so that the committed, CPU-executed notebooks are compared with CPU runs).

- the retrieval step takes a fused attention kernel (flash / memory-efficient) on 4-D inputs — the mistake measured
  once on an H200 was a silent fall-back to the unfused math kernel;
- half precision stays within the tolerances the chapters state;
- the in-context EBM step in bf16 autocast stays close to fp32, and the vectorised sampler equals the loop on CUDA;
- a step replayed from a CUDA graph (``CapturedCall``, ``Trainer(cuda_graph=True)``) follows the eager one;
- every chapter's CUDA path runs end to end on its quick preset.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make test-gpu on a GPU machine)")
CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("0*_*.md"))


def _sphere(n, d, seed, device="cuda"):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(n, d, generator=g, device=device, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_retrieval_takes_a_fused_kernel_in_half_precision(dtype):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from ambridge.dynamics import attention_update

    keys = _sphere(4096, 64, 0).float()
    queries = _sphere(1024, 64, 1).float()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):  # no math fall-back allowed
        fused = attention_update(queries, keys, keys, scale=10.0, precision=dtype)
    exact = attention_update(queries.double(), keys.double(), keys.double(), scale=10.0, method="exact")
    tol = 2e-3 if dtype == torch.float16 else 1.5e-2
    assert (fused.double() - exact).abs().max() < tol


def test_mean_shift_fixed_points_agree_in_float16():
    """The capacity sweep's success verdicts: float16 retrieval against float32 on the same queries."""
    from ambridge.kde import perturb, retrieve

    patterns = _sphere(20000, 32, 2).float()
    targets = torch.arange(512, device="cuda")
    starts = perturb(patterns[:512], 0.05, generator=torch.Generator(device="cuda").manual_seed(3))
    kw = dict(eps=0.05, tol=1e-5 * 20000 ** 0.5)
    half = retrieve(patterns, 0.2, targets, starts, precision=torch.float16, method="sphere", **kw)
    full = retrieve(patterns, 0.2, targets, starts, precision=torch.float32, method="sphere", **kw)
    agree = (half.success == full.success).float().mean().item()
    assert 0 < full.success.float().mean().item() < 1  # a point inside the drop, where the verdicts can differ
    assert agree >= 0.99


def test_icl_step_bf16_close_to_fp32_and_vectorised_equals_loop_on_cuda():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from icl_loop_sampler import loop_negatives

    from ambridge.icl import EnergyTransformer, ModelConfig, langevin_negatives, uniform_init

    torch.manual_seed(0)
    model = EnergyTransformer(ModelConfig(d_model=64, n_heads=8, n_layers=3)).cuda()
    g = torch.Generator().manual_seed(1)
    ctx = (5 * torch.randn(4, 20, 2, generator=g)).cuda()
    init = uniform_init((4, 20, 3, 2), 15.0, generator=g).cuda()
    noise = torch.randn(5, 4, 20, 3, 2, generator=g).cuda()
    kw = dict(n_negatives=3, n_steps=5, step_size=0.3, noise_std=0.01, box=15.0, init=init, noise=noise)
    fp32 = langevin_negatives(model, ctx, **kw)
    bf16 = langevin_negatives(model, ctx, autocast_dtype=torch.bfloat16, **kw)
    loop = loop_negatives(model, ctx, init, noise, step_size=0.3, noise_std=0.01, box=15.0)
    assert (fp32 - loop).abs().max() < 1e-4
    assert (bf16 - fp32).abs().median() < 0.05 * fp32.abs().median()  # bf16 carries ~3 significant digits


def test_captured_call_replays_what_it_recorded():
    from ambridge.runtime import CapturedCall

    w = torch.randn(8, 8, device="cuda")
    fn = lambda x, y: ((x @ w).relu() + y).sum(0)  # noqa: E731
    x0, y0 = torch.randn(4, 8, device="cuda"), torch.randn(4, 8, device="cuda")
    step = CapturedCall(fn, x0, y0)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)  # from the host, as the trainer does
        torch.testing.assert_close(step(x, y), fn(x.cuda(), y.cuda()))
    with pytest.raises(ValueError, match="shape"):
        step(torch.zeros(5, 8), y0)


def _tiny_train_config():
    from ambridge.icl import ModelConfig, TrainConfig

    return TrainConfig(model=ModelConfig(d_model=32, n_heads=4, n_layers=2), batch_size=4, langevin_steps=5,
                       n_steps=6, checkpoint_every=6)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_trainer_replaying_a_cuda_graph_follows_the_eager_trainer(grad_accum):
    from ambridge.icl import Trainer

    config = _tiny_train_config().with_(grad_accum=grad_accum)
    eager, graphed = Trainer(config, "cuda"), Trainer(config, "cuda", cuda_graph=True)
    eager.train(progress=False)
    graphed.train(progress=False)
    assert graphed._captured is not None  # the graph was used, not the eager path
    for (name, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-2, msg=name)
    for ra, rb in zip(eager.log, graphed.log):
        assert abs(ra["loss"] - rb["loss"]) < 1e-2 * (1 + abs(ra["loss"]))


def test_icl_step_benchmark_records_the_graph_speedup(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "icl_step.py"), "--device", "cuda",
                           "--configs", "tiny", "--repeats", "3", "--skip-loop", "--no-roofline",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    import json

    row = json.loads(next(tmp_path.glob("icl_step-cuda-*.json")).read_text())["rows"][0]
    assert row["captured_s"] > 0 and row["graph_speedup"] > 1
    assert row["captured_vs_vectorised_median_abs"] < 0.05  # bf16 kernels: the same chains to a few digits


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_cuda_path_runs_on_its_quick_preset(chapter, tmp_path):
    out = tmp_path / f"{chapter}.ipynb"
    done = subprocess.run([sys.executable, "-m", "ambridge.book.run", chapter, "--device", "cuda", "-q",
                           "-o", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert out.exists()
