"""How close each compressed model of ``bench.peer`` stays to its dense model, scored in one process
by the same functions for both tools on held-out texts: perplexity (the tool's own scoring path), the
KL divergence of next-token distributions from the dense model's, the first decoder layer's output
error; ours ÷ peer as ratios with 95% paired bootstrap intervals over the texts."""

from __future__ import annotations


def heldout_perplexity(path: str, texts: list[str], seqlen: int = 128):
    """Perplexity of ``texts`` under the model saved at ``path`` (fp32, CPU) as a ``Score`` that keeps
    each text's summed NLL and token count, so two models' perplexities can be compared paired over
    the texts. Loads through transformers, so a folder holding compressed-tensors weights is
    decompressed on the way in."""
    from cola_core.evaluation.suite import perplexity_score
    from cola_core.models.loading import load_model
    from cola_core.models.scoring import per_text_nll

    loaded = load_model(path, device="cpu", dtype="float32")
    nll, counts = per_text_nll(loaded.model, loaded.tokenizer, texts, seqlen)
    return perplexity_score("heldout", nll, counts, seed=0)


def ppl_ratio(ours, peer, level: float = 0.95) -> tuple[float, float, float]:
    """ours ÷ peer perplexity with its 95% paired bootstrap interval over the held-out texts (the same
    text draw applied to both models): the run-to-run and text-to-text spread a single ratio hides.
    ``retention`` is dense ÷ compressed for perplexity, so ours takes the dense slot."""
    from cola_core.evaluation.retention import retention

    return retention(ours, peer, seed=0, rounds=2000, level=level)


def next_token_logprobs(path: str, texts: list[str], seqlen: int = 128) -> list:
    """Per text, the model's full next-token log-distribution at each predicted position
    (``[tokens − 1, vocab]``, fp32). Held whole: meant for the bench's 1024-token vocabularies."""
    import torch

    from cola_core.models.batching import BATCH_TOKENS, length_batches
    from cola_core.models.chat import encode
    from cola_core.models.loading import load_model
    from cola_core.models.scoring import pad_rows

    loaded = load_model(path, device="cpu", dtype="float32")
    rows = encode(loaded.tokenizer, texts, truncation=True, max_length=seqlen)
    out: list = [None] * len(rows)
    with torch.inference_mode():
        for batch in length_batches([len(r) for r in rows], BATCH_TOKENS):
            enc = pad_rows([rows[i] for i in batch], loaded.tokenizer.pad_token_id, "cpu")
            logp = loaded.model(**enc, use_cache=False).logits[:, :-1].float().log_softmax(-1)
            for r, i in enumerate(batch):
                out[i] = logp[r, : len(rows[i]) - 1].clone()
    return out


def kl_to_dense(dense: list, model: list) -> list[float]:
    """Per text, Σ over its predicted tokens of KL(p_dense ‖ p_model) in nats: how far the compressed
    model's predictions moved from the dense model's, zero only for the dense model itself. Perplexity
    answers a different question (how well the text is predicted): on a random model, whose perplexity
    is about its vocabulary size, a compression can lower it by chance while moving away from the dense
    model, so fidelity to the dense model is read here."""
    return [float((d.exp() * (d - m)).sum()) for d, m in zip(dense, model, strict=True)]


def paired_ratio(
    ours: list[float], peer: list[float], seed: int = 0, rounds: int = 2000, level: float = 0.95
) -> tuple[float, float, float]:
    """Σ ours ÷ Σ peer over the texts with its ``level`` (95%) paired percentile bootstrap interval (the
    same text draw for both sides)."""
    import numpy as np

    a, b = np.asarray(ours, dtype=np.float64), np.asarray(peer, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(a), size=(rounds, len(a)))
    tail = 50 * (1 - level)
    lo, hi = np.percentile(a[idx].sum(1) / np.maximum(b[idx].sum(1), 1e-300), [tail, 100 - tail])
    return float(a.sum() / max(b.sum(), 1e-300)), float(lo), float(hi)


def first_layer_outputs(path: str, texts: list[str], seqlen: int, inputs=None):
    """The first decoder layer's outputs on ``texts`` under the model at ``path``, with the layer's
    inputs (captured from this model unless given: every method leaves the embeddings alone)."""
    import torch

    from cola_core.calibration.files import tokenize_calibration
    from cola_core.compress.capture import capture_layer_inputs, run_layer
    from cola_core.corpora import Record
    from cola_core.models.architecture import decoder_layers
    from cola_core.models.loading import load_model

    loaded = load_model(path, device="cpu", dtype="float32")
    if inputs is None:
        records = [Record(f"held/{i}", t, "prose", "prose") for i, t in enumerate(texts)]
        calib = tokenize_calibration(records, loaded.tokenizer, seqlen)
        inputs = capture_layer_inputs(
            loaded.model, calib["input_ids"], calib["attention_mask"], 4096, torch.device("cpu")
        )
    return run_layer(decoder_layers(loaded.model)[0], inputs), inputs


def output_error(outputs, dense, inputs) -> float:
    """‖y − y_dense‖² / ‖y_dense‖² over the real tokens."""
    num = sum(float((o - d)[m.bool()].square().sum()) for o, d, m in zip(outputs, dense, inputs.masks, strict=True))
    den = sum(float(d[m.bool()].square().sum()) for d, m in zip(dense, inputs.masks, strict=True))
    return num / den


class Dense:
    """What every compressed output of one dense model is scored against, computed once: its next-token
    log-distributions on the held-out texts, and its first decoder layer's outputs and inputs on the
    first 64 of them."""

    def __init__(self, path: str, texts: list[str], seqlen: int = 128) -> None:
        self.texts, self.seqlen = texts, seqlen
        self.logprobs = next_token_logprobs(path, texts, seqlen)
        self.outputs, self.inputs = first_layer_outputs(path, texts[:64], seqlen)


def scored(path: str, dense: Dense) -> dict:
    """The output saved at ``path`` against ``dense``: its held-out perplexity (``Score``), per-text KL
    to the dense model and first-layer output error."""
    return {
        "ppl": heldout_perplexity(path, dense.texts, dense.seqlen),
        "kl": kl_to_dense(dense.logprobs, next_token_logprobs(path, dense.texts, dense.seqlen)),
        "error": output_error(
            first_layer_outputs(path, [], dense.seqlen, dense.inputs)[0], dense.outputs, dense.inputs
        ),
    }


def mean_of(runs: list[dict]) -> dict:
    """Several outputs of one tool (runs calibrated in different sample orders) as one: per text the
    mean NLL and mean KL over the runs, so the paired intervals stay over the texts, and the mean error."""
    from cola_core.evaluation.suite import perplexity_score

    if len(runs) == 1:
        return runs[0]
    items = [r["ppl"].items for r in runs]
    nll = [sum(run[i][0] for run in items) / len(runs) for i in range(len(items[0]))]
    ppl = perplexity_score("heldout", nll, [n for _, n in items[0]], seed=0)
    kl = [sum(k) / len(runs) for k in zip(*(r["kl"] for r in runs), strict=True)]
    return {"ppl": ppl, "kl": kl, "error": sum(r["error"] for r in runs) / len(runs)}


def compare(first: str, second: list[str], dense: Dense, level: float = 0.95) -> dict:
    """The output saved at ``first`` and the outputs at ``second`` (one or several runs of one tool,
    scored as their mean, ``mean_of``) scored alike: each side's held-out perplexity (``Score``), mean
    per-token KL to the dense model and first-layer output error, and first ÷ second of perplexity and
    KL with their ``level`` paired intervals; ``each`` holds the perplexities of ``second`` one by one."""
    each = [scored(p, dense) for p in second]
    sides = [scored(first, dense), mean_of(each)]
    tokens = sum(len(t) for t in dense.logprobs)
    return {
        "ppl": [s["ppl"] for s in sides],
        "ppl_ratio": ppl_ratio(sides[0]["ppl"], sides[1]["ppl"], level),
        "kl": [sum(s["kl"]) / tokens for s in sides],
        "kl_ratio": paired_ratio(sides[0]["kl"], sides[1]["kl"], level=level),
        "error": [s["error"] for s in sides],
        "each": [s["ppl"].score for s in each],
    }
