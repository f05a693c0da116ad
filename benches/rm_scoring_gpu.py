"""Reward-model scoring throughput: prefcurate's RewardScorer against the
reward-bench-style loop, in one run on one GPU.

    python benches/rm_scoring_gpu.py                  # H100/H200: Llama-3.1-8B-shaped classifier
    python benches/rm_scoring_gpu.py --tiny           # CPU check of the script (tiny model, seconds)
    python benches/rm_scoring_gpu.py --json out.json  # also write the numbers
    python benches/rm_scoring_gpu.py --packing        # also packed (padding-free) batches
    python benches/rm_scoring_gpu.py --tiny --packing # CPU check of the packed path

Model: a ``LlamaForSequenceClassification`` with Llama-3.1-8B's shape (hidden
4096, 32 layers, 32 heads / 8 KV heads, MLP 14336, vocab 128256, one label),
random weights, built on the GPU in bf16 from a config (no download).  Data:
``--n`` (2,000) sequences of random token ids (a BOS first), lengths drawn
from a seeded lognormal with mean about ``--mean-len`` (610) tokens, clipped to
16..2048.

Loops, timed in the same process on the same model (a warm-up pass first):

- ``baseline``: reward-bench's loop: dataset order, batches of ``--batch-size``
  (8), padded on the right to the longest row, attention mask, the model
  called with its default arguments (as the HF pipeline does);
- ``prefcurate``: ``RewardScorer.score_ids``: length-sorted batches filled to
  ``--token-budget`` (65,536) padded tokens, right padding, no attention mask
  (causal decoder: the pads come after the real tokens), ``use_cache=False``;
- ``prefcurate-mask``: the same with the attention mask passed;
- ``prefcurate@16384``: ``prefcurate`` with a 16,384-token budget (less
  padding, smaller batches);
- with ``--packing``: ``prefcurate-packed`` (and ``prefcurate-packed@N`` for
  each ``@N`` budget asked for): ``RewardScorer(packing=True)``, several
  sequences per row with position ids restarting at 0 and no padding at all;
  with ``flash_attention_2`` (``--packed-attn``, the default where
  ``flash_attn`` is importable on CUDA) one packed row per batch through
  flash-attention's varlen kernel, else packed rows with a dense
  block-diagonal mask (correct, but slower than padded batches on a GPU).
  A final line compares the best padded and the best packed loop in real
  tokens/s.

Packing target (not measured: this script was last changed in a session
without a GPU, and only its ``--tiny`` CPU path was run): on one H200 with the
Llama-3.1-8B shape, padded batches plateau around 33.5k real tokens/s;
packed batches with flash-attention varlen should reach >= 40k tokens/s (the
padding they remove plus no masked attention).  Check it with ``--packing``
and report the numbers.

On one H100 expect about 5 minutes in all (the baseline about 2); trim with
``--variants baseline,prefcurate``.  Each loop's line is printed as it ends.

Printed per loop: wall seconds, real tokens/s (tokens of the sequences, pads
not counted), padding efficiency (real / padded tokens), MFU (model FLOPs of
the real tokens, ``2 * non-embedding params * tokens + 2 * layers * L^2 *
hidden`` per sequence of length L for causal attention, divided by the bf16
matmul throughput measured in this run on a 8192^3 product), and score
agreement with the baseline (max / mean absolute difference, Pearson r,
and the share of consecutive-row "pairs" whose margin sign agrees), plus the
distance of each loop's scores to one-at-a-time unpadded scores on a subset.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

# a module in benches/ may shadow a standard one (benches/select.py shadows `select`,
# which torch needs): import from the installed packages, not from this folder
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def import_scoring():
    """``prefcurate.scoring``, also where the compiled core is missing or built
    for another Python (a lent GPU machine: scoring needs none of it)."""
    try:
        from prefcurate import scoring

        return scoring
    except ImportError:
        import types

        for name in [m for m in sys.modules if m == "prefcurate" or m.startswith("prefcurate.")]:
            del sys.modules[name]
        pkg = types.ModuleType("prefcurate")
        pkg.__path__ = [str(_HERE.parent / "python" / "prefcurate")]
        sys.modules["prefcurate"] = pkg  # the package without its __init__ (which loads the core)
        from prefcurate import scoring

        return scoring


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--tiny", action="store_true", help="CPU, tiny model, 200 short sequences: checks the script"
    )
    p.add_argument("--n", type=int, default=None, help="sequences (default 2000; --tiny 200)")
    p.add_argument(
        "--mean-len", type=float, default=None, help="mean length in tokens (default 610; --tiny 60)"
    )
    p.add_argument("--sigma", type=float, default=0.8, help="lognormal sigma of the lengths")
    p.add_argument(
        "--max-len", type=int, default=None, help="clip lengths to this (default 2048; --tiny 256)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="baseline batch size")
    p.add_argument(
        "--token-budget", type=int, default=None, help="prefcurate budget (default 65536; --tiny 4096)"
    )
    p.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager, flash_attention_2)")
    p.add_argument(
        "--packing",
        action="store_true",
        help="also time packed batches (prefcurate-packed, and prefcurate-packed@N for each @N variant)",
    )
    p.add_argument(
        "--packed-attn",
        default=None,
        help="attention for the packed loops (default: flash_attention_2 where flash_attn is importable "
        "on CUDA, else --attn)",
    )
    p.add_argument(
        "--variants",
        default=None,
        help="loops to time: baseline, prefcurate, prefcurate-mask, prefcurate-packed; '@N' sets a token "
        "budget (default: the first three and prefcurate@16384 (--tiny: @1024); --packing adds the packed ones)",
    )
    p.add_argument("--reference-rows", type=int, default=48, help="rows scored one at a time, unpadded")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument(
        "--records",
        default=None,
        help="append one JSON record per loop (JSON Lines, benches/benchkit.py): warm figures, "
        "timed after a warm-up pass in one process on one model",
    )
    a = p.parse_args()
    a.n = a.n or (200 if a.tiny else 2000)
    a.mean_len = a.mean_len or (60.0 if a.tiny else 610.0)
    a.max_len = a.max_len or (256 if a.tiny else 2048)
    a.token_budget = a.token_budget or (4096 if a.tiny else 65536)
    small = 1024 if a.tiny else 16384
    if a.variants is None:
        a.variants = f"baseline,prefcurate,prefcurate-mask,prefcurate@{small}"
        if a.packing:
            a.variants += f",prefcurate-packed,prefcurate-packed@{small}"
    elif a.packing and "prefcurate-packed" not in a.variants:
        extra = [
            "prefcurate-packed" + v.strip()[len("prefcurate") :]
            for v in a.variants.split(",")
            if v.strip() == "prefcurate" or v.strip().startswith("prefcurate@")
        ]
        a.variants = ",".join([a.variants, *(extra or ["prefcurate-packed"])])
    return a


def lengths_with_mean(
    rng: np.random.Generator, n: int, mean: float, sigma: float, lo: int, hi: int
) -> np.ndarray:
    """Seeded lognormal lengths clipped to [lo, hi] whose sample mean is close
    to ``mean`` (mu adjusted for the clipping by a few fixed-point steps)."""
    z = rng.standard_normal(n)
    mu = np.log(mean) - sigma**2 / 2
    for _ in range(20):
        lengths = np.clip(np.rint(np.exp(mu + sigma * z)), lo, hi).astype(np.int64)
        mu += np.log(mean / lengths.mean())
    return lengths


def build_model(tiny: bool, device: str, dtype, attn: str):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    if tiny:
        shape = dict(
            vocab_size=2048,
            hidden_size=64,
            intermediate_size=224,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
        )
        pad, bos, eos = 2047, 0, 1
    else:  # Llama-3.1-8B
        shape = dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=131072,
            rope_theta=500000.0,
            rms_norm_eps=1e-5,
        )
        pad, bos, eos = 128004, 128000, 128009
    config = LlamaConfig(**shape, num_labels=1, pad_token_id=pad, bos_token_id=bos, eos_token_id=eos)
    config._attn_implementation = attn
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForSequenceClassification(config)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation(attn)
    return model


def set_attn(model, attn: str) -> None:
    """Switch the shared model's attention (the packed loops may use another)."""
    if getattr(model.config, "_attn_implementation", None) != attn and hasattr(
        model, "set_attn_implementation"
    ):
        model.set_attn_implementation(attn)


def matmul_peak(device: str, dtype, tiny: bool) -> float:
    """Measured dense matmul throughput (FLOP/s) for ``dtype`` on ``device``."""
    import torch

    n = 1024 if tiny else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 5 if tiny else 50
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def model_flops(model, lengths: np.ndarray) -> float:
    cfg = model.config
    n_params = sum(p.numel() for name, p in model.named_parameters() if "embed_tokens" not in name)
    tokens = float(lengths.sum())
    attn = 2.0 * cfg.num_hidden_layers * cfg.hidden_size * float((lengths.astype(np.float64) ** 2).sum())
    return 2.0 * n_params * tokens + attn


def baseline_loop(model, seqs: list[np.ndarray], batch_size: int, pad: int, device: str):
    """reward-bench's loop: dataset order, fixed batch size, padded on the
    right to the longest, attention mask, default model arguments."""
    import torch

    scores = np.empty(len(seqs), dtype=np.float32)
    padded = 0
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            batch = seqs[i : i + batch_size]
            longest = max(len(s) for s in batch)
            ids = np.full((len(batch), longest), pad, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for r, s in enumerate(batch):
                ids[r, : len(s)] = s
                mask[r, : len(s)] = 1
            padded += ids.size
            out = model(
                input_ids=torch.from_numpy(ids).to(device), attention_mask=torch.from_numpy(mask).to(device)
            )
            scores[i : i + len(batch)] = out.logits[:, 0].float().cpu().numpy()
    return scores, padded


def one_at_a_time(model, seqs: list[np.ndarray], device: str) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.array(
            [
                model(input_ids=torch.from_numpy(s[None, :]).to(device), use_cache=False)
                .logits[0, 0]
                .float()
                .item()
                for s in seqs
            ],
            dtype=np.float32,
        )


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(a.astype(np.float64) - b)
    m = len(a) // 2 * 2
    sign_a = np.sign(a[0:m:2].astype(np.float64) - a[1:m:2])
    sign_b = np.sign(b[0:m:2].astype(np.float64) - b[1:m:2])
    return {
        "max_abs_diff": float(d.max()),
        "mean_abs_diff": float(d.mean()),
        "pearson_r": float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else float("nan"),
        "pair_sign_agreement": float((sign_a == sign_b).mean()),
    }


def main() -> int:
    args = parse_args()
    import torch
    import transformers

    RewardScorer = import_scoring().RewardScorer

    device = "cpu" if args.tiny else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --tiny for a CPU check", file=sys.stderr)
        return 2
    dtype = torch.float32 if args.tiny else torch.bfloat16
    if args.tiny:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    dev_name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {dev_name}; torch {torch.__version__}, transformers {transformers.__version__}; "
        f"dtype {str(dtype).removeprefix('torch.')}; attention {args.attn}"
    )

    peak = matmul_peak(device, dtype, args.tiny)
    print(f"measured matmul ceiling: {peak / 1e12:.2f} TFLOP/s ({'1024' if args.tiny else '8192'}^3)")

    t = time.perf_counter()
    model = build_model(args.tiny, device, dtype, args.attn)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"model: {'tiny' if args.tiny else 'Llama-3.1-8B-shaped'} classifier, {n_params / 1e6:,.1f} M params, "
        f"built in {time.perf_counter() - t:.1f} s"
    )

    rng = np.random.default_rng(args.seed)
    lengths = lengths_with_mean(rng, args.n, args.mean_len, args.sigma, 16, args.max_len)
    vocab, pad, bos = model.config.vocab_size, model.config.pad_token_id, model.config.bos_token_id
    seqs = []
    for n_tok in lengths:
        s = rng.integers(0, vocab - 1, size=int(n_tok), dtype=np.int64)
        s[(s == pad) | (s == bos)] = pad - 1
        s[0] = bos
        seqs.append(s)
    total = int(lengths.sum())
    print(
        f"data: {args.n} sequences, {total} tokens; length mean {lengths.mean():.1f}, median "
        f"{np.median(lengths):.0f}, p99 {np.percentile(lengths, 99):.0f}, max {lengths.max()}"
    )
    flops = model_flops(model, lengths)

    packed_attn = args.packed_attn or (
        "flash_attention_2" if device == "cuda" and importlib.util.find_spec("flash_attn") else args.attn
    )
    if args.packing:
        print(f"packed loops: attention {packed_attn}")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    results: dict[str, dict] = {}
    scores: dict[str, np.ndarray] = {}

    # warm-up: kernels, cuBLAS handles, allocator
    baseline_loop(model, seqs[: 2 * args.batch_size], args.batch_size, pad, device)

    for v in variants:
        if v == "baseline":
            sync(device)
            t = time.perf_counter()
            s, padded = baseline_loop(model, seqs, args.batch_size, pad, device)
            sync(device)
            secs = time.perf_counter() - t
            extra = {"batches": -(-args.n // args.batch_size), "oom_retries": 0}
        elif v.split("@")[0] in ("prefcurate", "prefcurate-mask", "prefcurate-packed"):
            kind, _, budget = v.partition("@")
            packed = kind == "prefcurate-packed"
            attn = packed_attn if packed else args.attn
            set_attn(model, attn)
            sc = RewardScorer(
                model,
                device=device,
                token_budget=int(budget) if budget else args.token_budget,
                max_length=args.max_len,
                skip_padding_mask=(kind != "prefcurate-mask"),
                packing=packed,
                model_id="bench",
            )
            sc.score_ids(seqs[:8])  # warm-up
            sync(device)
            t = time.perf_counter()
            res = sc.score_ids(seqs)
            sync(device)
            secs = time.perf_counter() - t
            set_attn(model, args.attn)
            s, padded = res.scores, res.stats.padded_tokens
            extra = {
                "batches": res.stats.batches,
                "oom_retries": res.stats.oom_retries,
                "attn": attn,
                "packing_mode": sc.packing_mode,
            }
        else:
            print(f"unknown variant {v!r}", file=sys.stderr)
            return 2
        scores[v] = s
        results[v] = {
            "seconds": round(secs, 3),
            "real_tokens_per_s": round(total / secs, 1),
            "padding_efficiency": round(total / padded, 4),
            "mfu": round(flops / secs / peak, 4),
            **extra,
        }
        r = results[v]
        print(
            f"  {v}: {secs:.2f} s, {r['real_tokens_per_s']:.0f} real tokens/s, padding efficiency "
            f"{r['padding_efficiency']:.3f}, MFU {100 * r['mfu']:.1f}%, {r['batches']} batches",
            flush=True,
        )

    ref_n = min(args.reference_rows, args.n)
    ref = one_at_a_time(model, seqs[:ref_n], device)
    for v in variants:
        if "baseline" in scores and v != "baseline":
            results[v]["agreement_with_baseline"] = agreement(scores[v], scores["baseline"])
        results[v]["vs_unpadded_first_rows"] = {
            "rows": ref_n,
            "max_abs_diff": float(np.abs(scores[v][:ref_n].astype(np.float64) - ref).max()),
        }

    base = results.get("baseline")
    print(
        f"\n{'loop':<24} {'seconds':>8} {'tokens/s':>10} {'vs base':>8} {'padding':>8} {'MFU':>6} {'batches':>8}"
    )
    for v, r in results.items():
        speed = f"{base['seconds'] / r['seconds']:.2f}x" if base else "-"
        print(
            f"{v:<24} {r['seconds']:>8.2f} {r['real_tokens_per_s']:>10.0f} {speed:>8} "
            f"{r['padding_efficiency']:>8.3f} {100 * r['mfu']:>5.1f}% {r['batches']:>8}"
        )
    print("\nscore agreement")
    for v, r in results.items():
        a = r.get("agreement_with_baseline")
        u = r["vs_unpadded_first_rows"]
        line = f"  {v:<24} vs unpadded (first {u['rows']} rows): max |diff| {u['max_abs_diff']:.3g}"
        if a:
            line += (
                f"; vs baseline: max |diff| {a['max_abs_diff']:.3g}, mean {a['mean_abs_diff']:.3g}, "
                f"r {a['pearson_r']:.6f}, pair-sign agreement {100 * a['pair_sign_agreement']:.2f}%"
            )
        print(line)
    print(f"\nscore spread (baseline or first loop): std {np.std(next(iter(scores.values()))):.4g}")
    padded_loops = {v: r for v, r in results.items() if v.startswith("prefcurate") and "packed" not in v}
    packed_loops = {v: r for v, r in results.items() if "packed" in v}
    if padded_loops and packed_loops:
        bp = max(padded_loops, key=lambda v: padded_loops[v]["real_tokens_per_s"])
        bk = max(packed_loops, key=lambda v: packed_loops[v]["real_tokens_per_s"])
        a, b = padded_loops[bp]["real_tokens_per_s"], packed_loops[bk]["real_tokens_per_s"]
        print(
            f"padded vs packed: best padded {bp} {a:.0f} real tokens/s, best packed {bk} {b:.0f} real tokens/s "
            f"({b / a:.2f}x)"
        )

    if args.json:
        out = {
            "device": dev_name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "dtype": str(dtype),
            "attn": args.attn,
            "matmul_tflops": peak / 1e12,
            "n": args.n,
            "tokens": total,
            "mean_len": float(lengths.mean()),
            "token_budget": args.token_budget,
            "batch_size": args.batch_size,
            "packed_attn": packed_attn if args.packing else None,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    if args.records:
        write_records(args, results, dev_name, total, float(lengths.mean()))
    return 0


def write_records(args, results: dict, dev_name: str, tokens: int, mean_len: float) -> None:
    """One record per loop: mode "warm" (the model is built and a warm-up pass
    made before the clock: a GPU job's set-up is not what this compares)."""
    spec = importlib.util.spec_from_file_location("benchkit", _HERE / "benchkit.py")
    assert spec is not None and spec.loader is not None
    benchkit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchkit)
    rec = benchkit.Records(args.records, "rm_scoring_gpu")
    rec.workload(
        device=dev_name,
        tiny=bool(args.tiny),
        sequences=args.n,
        tokens=tokens,
        mean_len=mean_len,
        token_budget=args.token_budget,
        batch_size=args.batch_size,
        attn=args.attn,
    )
    for v, r in results.items():
        rec.tool(
            v,
            f"reward-bench loop (batches of {args.batch_size}, padded, attention mask)"
            if v == "baseline"
            else f"prefcurate RewardScorer, {v}",
            "peer" if v == "baseline" else "prefcurate",
            baseline=v == "prefcurate",
            mode="warm",
            seconds=r["seconds"],
            rows=args.n,
            metrics={k: x for k, x in r.items() if k != "seconds"},
            notes=f"{dev_name}; the model built and a warm-up pass made before the clock",
        )


if __name__ == "__main__":
    sys.exit(main())
