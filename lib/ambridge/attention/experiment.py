"""The experiment the paper proposes and did not run: train attention with tied and with untied concentration and
mixing weight on a task whose Bayes answer is a vMF E-step, and compare.

- :class:`RetrievalTask` and :func:`vmf_retrieval_batch` — in-context vMF retrieval, with its exact posterior;
- :func:`bayes_loss` — the floor no model can beat (mean −log posterior of the true component);
- :func:`train_retrieval` — AdamW on fresh batches, evaluated on a fixed batch;
- :func:`compare_forms` — every (form, seed) on the same data stream, optionally in a process pool.

Used in chapter 6, § Inside a trained transformer, and § The experiment the paper proposes: untie concentration
and mixing weight.
"""

from __future__ import annotations

import concurrent.futures
import math
import multiprocessing
from dataclasses import dataclass
from typing import Sequence

import torch

from .. import checks
from ..data import sphere_points
from .model import FORMS, Form, RetrievalTransformer
from .vmf import sample_vmf, vmf_responsibilities

__all__ = ["RetrievalTask", "vmf_retrieval_batch", "bayes_loss", "train_retrieval", "compare_forms"]


@dataclass
class RetrievalTask:
    """In-context vMF retrieval — the generative model the vMF reading of attention assumes.

    Each sequence holds ``n_memories`` memory tokens, one per mixture component s: a direction m_s uniform on
    S^{p−1}, a concentration κ_s drawn from ``kappas`` and a log weight log π_s ~ N(0, ``log_weight_std``²)
    (normalised). The token carries [m_s, log κ_s / log κ_max, log π_s, 1]. Then ``n_queries`` query tokens
    [x, 0, 0, 0], each drawn z ~ π, x ~ vMF(m_z, κ_z). The target for a query is z; the Bayes posterior is the vMF
    E-step r_s ∝ π_s C_p(κ_s) e^{κ_s m_sᵀx}, so the best achievable loss is its mean entropy.

    Used in chapter 6, § Inside a trained transformer.
    """

    dim: int = 8  # p: data on S^{p−1}
    n_memories: int = 8  # S: mixture components in context
    n_queries: int = 8  # queries per sequence
    kappas: tuple = (2.0, 5.0, 12.0, 30.0, 75.0)  # grid of concentrations (a grid keeps SciPy sampling batched)
    log_weight_std: float = 1.0

    @property
    def token_dim(self) -> int:
        return self.dim + 3


def vmf_retrieval_batch(
    task: RetrievalTask, batch_size: int, *, generator: torch.Generator | None = None, posterior: bool = True
) -> dict:
    """A batch of the task: ``tokens`` (B, S + Q, p + 3), memories first; ``target`` z (B, Q); ``posterior`` the
    Bayes E-step (B, Q, S) (None if ``posterior=False``, which saves time in training); ``kappa`` and
    ``log_weight`` (B, S) (log π normalised); ``directions`` (B, S, p).

    Used in chapter 6, § Inside a trained transformer (the probe batch), and by :func:`compare_forms`.
    """
    checks.count("batch_size", batch_size, low=1)
    b, s, q, p = batch_size, task.n_memories, task.n_queries, task.dim
    m = sphere_points(b * s, p, generator=generator, dtype=torch.float64).reshape(b, s, p)
    grid = torch.tensor(task.kappas, dtype=torch.float64)
    kappa = grid[torch.randint(0, len(grid), (b, s), generator=generator)]
    raw = task.log_weight_std * torch.randn(b, s, generator=generator, dtype=torch.float64)
    log_w = raw - torch.logsumexp(raw, dim=-1, keepdim=True)
    z = torch.multinomial(log_w.exp(), q, replacement=True, generator=generator)  # (B, Q)
    chosen = torch.gather(m, 1, z.unsqueeze(-1).expand(b, q, p))
    x = sample_vmf(chosen.reshape(-1, p), torch.gather(kappa, 1, z).reshape(-1), generator=generator)
    x = x.reshape(b, q, p)
    bayes = vmf_responsibilities(x, m, kappa.unsqueeze(1), log_w.unsqueeze(1)) if posterior else None
    features = [(kappa.log() / math.log(max(task.kappas))).unsqueeze(-1), log_w.unsqueeze(-1),
                torch.ones(b, s, 1, dtype=torch.float64)]
    memory = torch.cat([m, *features], -1)
    query = torch.cat([x, torch.zeros(b, q, 3, dtype=torch.float64)], -1)
    return {
        "tokens": torch.cat([memory, query], 1).to(torch.float32),
        "target": z,
        "posterior": bayes,
        "kappa": kappa,
        "log_weight": log_w,
        "directions": m,
    }


def bayes_loss(batch: dict) -> float:
    """The Bayes floor of a batch from :func:`vmf_retrieval_batch`: the mean −log of the exact vMF posterior at the
    true component, −mean log r_z(x) — the cross-entropy of the ideal E-step, which no model can beat on average.

    Used in chapter 6, § Inside a trained transformer (through :func:`compare_forms`).
    """
    if batch.get("posterior") is None:
        raise checks.ParameterError("batch", batch, "needs its posterior (draw it with posterior=True)",
                                    shown="a batch without posterior")
    picked = torch.gather(batch["posterior"], -1, batch["target"].unsqueeze(-1))
    return -picked.clamp_min(1e-300).log().mean().item()


def train_retrieval(
    model: RetrievalTransformer,
    task: RetrievalTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    eval_batch: dict,
    eval_every: int = 25,
    generator: torch.Generator | None = None,
    batches: Sequence[dict] | None = None,
) -> dict:
    """Train on fresh batches with AdamW (cosine-decayed learning rate) on the cross-entropy of z at the queries.

    The batches are drawn from ``generator`` as training goes, or taken in order from ``batches`` (at least
    ``steps`` of them, drawn beforehand with :func:`vmf_retrieval_batch`: several models then train on one stream
    drawn once). Returns ``{"step": [...], "loss": [...]}``: the mean cross-entropy on ``eval_batch`` (a fixed batch
    from :func:`vmf_retrieval_batch`) every ``eval_every`` steps, including step 0 and the last.

    Used in chapter 6, § Inside a trained transformer (through :func:`compare_forms`).
    """
    checks.count("steps", steps, low=1)
    if batches is not None and len(batches) < steps:
        raise checks.ParameterError("batches", batches, f"must hold at least `steps` = {steps} batches",
                                    shown=f"{len(batches)} batches")
    s = task.n_memories
    device = next(model.parameters()).device
    eval_tokens, eval_target = eval_batch["tokens"].to(device), eval_batch["target"].to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    history = {"step": [], "loss": []}

    def evaluate(step):
        model.eval()
        with torch.no_grad():
            logp = model(eval_tokens, s)[:, s:]
            loss = -torch.gather(logp, -1, eval_target.unsqueeze(-1)).mean().item()
        model.train()
        history["step"].append(step)
        history["loss"].append(loss)

    for step in range(steps):
        if step % eval_every == 0:
            evaluate(step)
        if batches is None:
            batch = vmf_retrieval_batch(task, batch_size, generator=generator, posterior=False)
        else:
            batch = batches[step]
        logp = model(batch["tokens"].to(device), s)[:, s:]
        loss = -torch.gather(logp, -1, batch["target"].to(device).unsqueeze(-1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    evaluate(steps)
    return history


@dataclass(frozen=True)
class _Run:
    """One training run of :func:`compare_forms`: module-level and plain, so a worker process can unpickle it."""

    task: RetrievalTask
    config: dict  # d_model, n_layers, n_heads, steps, batch_size, lr, eval_every
    form: str
    seed: int  # initialisation seed; the training batches come from 10 000 + seed
    eval_batch: dict  # tokens and target of the fixed evaluation batch
    device: str


def _stream(run: _Run) -> list[dict]:
    """The training batches of one seed, drawn from 10 000 + seed: the same for every form."""
    gen = torch.Generator().manual_seed(10_000 + run.seed)
    return [vmf_retrieval_batch(run.task, run.config["batch_size"], generator=gen, posterior=False)
            for _ in range(run.config["steps"])]


def _train(run: _Run, batches: list[dict] | None = None) -> tuple[dict, RetrievalTransformer]:
    """Train one run here: its evaluation history and the trained model (on the CPU). ``batches``: the seed's stream
    when it was drawn already (:func:`_stream`); else it is drawn as training goes, identically."""
    cfg = run.config
    torch.manual_seed(run.seed)
    model = RetrievalTransformer(run.task.token_dim, cfg["d_model"], cfg["n_layers"], cfg["n_heads"], run.form)
    model = model.to(device=run.device, dtype=torch.float32)  # whatever torch's default dtype is
    history = train_retrieval(
        model, run.task, steps=cfg["steps"], batch_size=cfg["batch_size"], lr=cfg["lr"], eval_batch=run.eval_batch,
        eval_every=cfg["eval_every"], generator=torch.Generator().manual_seed(10_000 + run.seed), batches=batches,
    )
    return history, model.cpu()


def _train_in_worker(run: _Run) -> dict:
    """Train one run in a worker process: one thread, and only the history goes back."""
    torch.set_num_threads(1)
    return _train(run)[0]


def compare_forms(
    task: RetrievalTask,
    *,
    seeds: Sequence[int],
    forms: Sequence[Form] = ("standard", "untied"),
    d_model: int = 32,
    n_layers: int = 1,
    n_heads: int = 2,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 3e-3,
    eval_size: int = 256,
    eval_every: int = 20,
    data_seed: int = 0,
    device: str | torch.device = "cpu",
    workers: int = 1,
) -> dict:
    """Train every (form, seed) on the same task and compare: the paper's proposed experiment.

    Runs with the same seed share the initialisation seed *and* the stream of training batches, so the forms are
    compared in pairs; every run is evaluated on one fixed batch of ``eval_size`` sequences (drawn from
    ``data_seed``), whose Bayes loss (:func:`bayes_loss`) is the floor. ``forms``: any of
    :data:`~ambridge.attention.model.FORMS`. ``workers`` > 1 trains in that many processes (spawned, one thread
    each; the models are then not returned); with one worker each seed's stream is drawn once for all forms.

    Returns ``{"step": [...], "bayes_loss": float, "loss": {form: [[loss per step] per seed]}, "seeds": [...],
    "n_parameters": {form: number of trained parameters}, "config": {...}, "task": {...},
    "models": {form: [model per seed]}}`` (``models`` only when ``workers == 1``).

    Used in chapter 6, § Inside a trained transformer, § The experiment the paper proposes: untie concentration
    and mixing weight, and § Untying, unconfounded.
    """
    checks.count("workers", workers, low=1)
    if not forms or len(set(forms)) != len(forms):
        raise checks.ParameterError("forms", forms, "must name each form once, at least one", shown=f"{list(forms)}")
    for form in forms:
        checks.check_choice("forms", form, list(FORMS))
    eval_batch = vmf_retrieval_batch(task, eval_size, generator=torch.Generator().manual_seed(data_seed))
    bayes = bayes_loss(eval_batch)
    fixed = {"tokens": eval_batch["tokens"], "target": eval_batch["target"]}
    config = dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads, steps=steps, batch_size=batch_size, lr=lr,
                  eval_every=eval_every)
    runs = [_Run(task, config, f, int(s), fixed, str(device)) for f in forms for s in seeds]
    models = None
    if workers > 1:
        spawn = multiprocessing.get_context("spawn")  # a child forked after torch started its threads can hang
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn) as pool:
            histories = list(pool.map(_train_in_worker, runs))
    else:
        streams = {run.seed: None for run in runs}
        trained = []
        for run in runs:  # forms vary slowest: each seed's stream is drawn at its first use and kept
            if streams[run.seed] is None:
                streams[run.seed] = _stream(run)
            trained.append(_train(run, streams[run.seed]))
        histories = [history for history, _ in trained]
        models = {f: [model for run, (_, model) in zip(runs, trained) if run.form == f] for f in forms}
    loss = {f: [h["loss"] for run, h in zip(runs, histories) if run.form == f] for f in forms}
    with torch.random.fork_rng(devices=[]):  # counting parameters must not move torch's global generator
        sizes = {f: sum(prm.numel() for prm in RetrievalTransformer(task.token_dim, d_model, n_layers, n_heads, f)
                        .parameters()) for f in forms}
    out = {"step": histories[0]["step"], "bayes_loss": bayes, "loss": loss, "seeds": [int(s) for s in seeds],
           "n_parameters": sizes, "config": config,
           "task": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(task).items()}}
    if models is not None:
        out["models"] = models
    return out
