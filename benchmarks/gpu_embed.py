"""GPU benchmark (for a machine with CUDA): embedding with a DINOv2-giant-sized ViT and a 7B LM, TFLOP/s vs the card.

Run on demand on a GPU server: `python -m benchmarks.gpu_embed` (`--quick` runs tiny models, 2 layers
and hidden 64, in float32 on the CPU; `--only vit|lm` runs one model; `--through-disk` saves the
weights and lets the encoder load them itself). No weights or network needed: both models are built
with random weights from configs of the real sizes, in bfloat16 on the card:
- ViT: transformers Dinov2Config as facebook/dinov2-giant (hidden 1536, 40 layers, 24 heads,
  mlp_ratio 4 with the SwiGLU feed-forward, image 224, patch 14: 257 tokens), batch 64, with the
  DINOv2 image processor (resize to 256, centre crop 224); inputs are random uint8 224x224 images.
- LM: LlamaConfig of LLaMA-7B (hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000),
  batch 32, texts of 64 and of 256 tokens (a word-level tokenizer: one word is one token).
Both go through the product's encoders, `create_encoder("hf:<folder>", modality=..., dtype="bfloat16",
device="cuda")`: the folder holds the config and the processor / tokenizer, and the randomly built model
is handed to the encoder in place of its lazy load (`encoder.model`), so nothing 13 GB is written.

Measures, after warm-up batches and between torch.cuda.synchronize() calls:
- encode samples/s: `encoder.encode(batch)`, the product's whole path (preprocessing on the host,
  forward with every hidden state, pooling, copy of every layer's features to the host);
- forward samples/s: the model's forward alone (output_hidden_states=True) on inputs prepared beforehand;
- TFLOP/s of each: forward FLOPs per sample = 2 x P x T + 4 x L x T^2 x H, with P the weights of the
  linear layers (and the ViT's patch convolution) that run (no embedding table, no LM head), T the tokens
  per sample, L the layers and H the hidden size (the second term is attention, QK^T and AV; counted in
  full, also for the causal LM), against the card's measured bf16 matmul rate (8192^3, synchronised).
Writes benchmarks/results/gpu_embed.{json,md} (`--quick`: gpu_embed_quick.*).
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from core.encoders import create_encoder

OUT = Path(__file__).parent / "results"
DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float32: "float32"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device: torch.device, dtype: torch.dtype, n: int = 8192, repeats: int = 20) -> float:
    """The card's dense matmul rate for [n, n] @ [n, n] in `dtype`."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e12


def vit_setup(quick: bool):
    from transformers import BitImageProcessor, Dinov2Config

    size = 56 if quick else 224
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4) if quick else \
        dict(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24)
    config = Dinov2Config(**shape, mlp_ratio=4, use_swiglu_ffn=True, image_size=size, patch_size=14,
                          architectures=["Dinov2Model"])
    # facebook/dinov2-*'s preprocessor_config.json: resize the short side to 256 (bicubic), centre crop 224.
    processor = BitImageProcessor(size={"shortest_edge": size * 8 // 7}, crop_size={"height": size, "width": size},
                                  do_center_crop=True, resample=3, image_mean=[0.485, 0.456, 0.406],
                                  image_std=[0.229, 0.224, 0.225], do_convert_rgb=True)
    return config, processor


def lm_setup(quick: bool, words: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                 intermediate_size=172, vocab_size=32000) if quick else \
        dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
             intermediate_size=11008, vocab_size=32000)
    config = LlamaConfig(**shape, max_position_embeddings=2048, architectures=["LlamaForCausalLM"],
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    vocab = {"[PAD]": 0, "[BOS]": 1, "[EOS]": 2, "[UNK]": 3, **{w: i + 4 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        bos_token="[BOS]", eos_token="[EOS]")
    return config, tokenizer


def synthetic_words(count: int, rng: np.random.Generator) -> list[str]:
    """Distinct lower-case pseudo-words of 2-9 letters."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(letters, rng.integers(2, 10))))
    return sorted(words)


def build_model(config, auto_class: str, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Random weights of the config's size, made directly on the device (no host copy of 13 GB)."""
    import transformers

    with torch.device(device):
        model = getattr(transformers, auto_class).from_config(config, dtype=dtype)
    return model.eval()


def linear_weights(model: torch.nn.Module) -> int:
    """P in the FLOP formula: weights of the linear layers and convolutions (per-token matmuls)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))


def timed(step, device: torch.device, warmup: int, repeats: int) -> float:
    """Seconds per call of `step`, after `warmup` calls."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync(device)
    return (time.perf_counter() - start) / repeats


def measure(encoder, batch: list, forward, tokens: int, config, device: torch.device, warmup: int, repeats: int,
            rate: float, **extra) -> dict:
    """encode and forward-only throughput of one batch shape, with FLOP/s against the matmul rate."""
    module = encoder.feature_model if encoder.modality == "text" else encoder.model
    features = encoder.encode(batch)
    assert len(features) == len(encoder.layer_names) and all(f.shape[0] == len(batch) for f in features)
    encode_s = timed(lambda: encoder.encode(batch), device, warmup, repeats)
    forward_s = timed(forward, device, warmup, repeats)
    weights = linear_weights(module)
    layers, hidden = config.num_hidden_layers, config.hidden_size
    flops = 2 * weights * tokens + 4 * layers * tokens ** 2 * hidden
    size = len(batch)
    row = {"encoder": type(encoder).__name__, "modality": encoder.modality, **extra,
           "attention": getattr(encoder.model.config, "_attn_implementation", None),
           "batch": size, "tokens_per_sample": tokens,
           "parameters": sum(p.numel() for p in module.parameters()), "linear_weights": weights,
           "layers": layers, "hidden": hidden, "forward_gflop_per_sample": flops / 1e9,
           "encode_per_s": size / encode_s, "forward_per_s": size / forward_s,
           "encode_tflops": flops * size / encode_s / 1e12, "forward_tflops": flops * size / forward_s / 1e12,
           "matmul_tflops": rate, "forward_share_of_matmul": flops * size / forward_s / 1e12 / rate,
           "finite_features": bool(all(np.isfinite(f).all() for f in features))}
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return row


def make_encoder(folder: Path, config, auto_class: str, modality: str, device: torch.device, dtype: torch.dtype,
                 batch: int, through_disk: bool, **options):
    """The product's encoder on `folder` (config and processor / tokenizer saved there) and a random model.

    The model, built on the device, replaces the encoder's lazy load (`encoder.model`, a cached_property);
    with `through_disk` its weights are saved to the folder instead and the encoder loads them itself.
    Returns the encoder, the seconds spent building the model and those spent saving and loading it.
    """
    start = time.perf_counter()
    model = build_model(config, auto_class, device, dtype)
    sync(device)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    if through_disk:
        model.save_pretrained(folder)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    encoder = create_encoder(f"hf:{folder}", modality=modality, device=str(device), dtype=DTYPE_NAMES[dtype],
                             batch_size=batch, **options)
    if not through_disk:
        encoder.model = model  # fills the cached_property that would otherwise from_pretrained the folder
    encoder.model  # noqa: B018  (loads now under --through-disk, so loading is not timed as encoding)
    sync(device)
    return encoder, build_s, time.perf_counter() - start


def run_vit(args, device, dtype, rate, folder: Path) -> list[dict]:
    config, processor = vit_setup(args.quick)
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    batch_size = 4 if args.quick else 64
    encoder, built_s, load_s = make_encoder(folder, config, "AutoModel", "image", device, dtype, batch_size,
                                            args.through_disk)
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(batch_size)]
    pixels = encoder.processor(images, return_tensors="pt")["pixel_values"].to(device, dtype)
    tokens = 1 + (config.image_size // config.patch_size) ** 2

    @torch.inference_mode()
    def forward():
        encoder.model(pixel_values=pixels, output_hidden_states=True)

    row = measure(encoder, images, forward, tokens, config, device, args.warmup, args.repeats, rate,
                  architecture="DINOv2-giant" if not args.quick else "DINOv2 (tiny)",
                  processor=type(encoder.processor).__name__, build_s=built_s, save_and_load_s=load_s)
    del encoder, pixels
    return [row]


def run_lm(args, device, dtype, rate, folder: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    words = synthetic_words(2000 if args.quick else 20000, rng)
    config, tokenizer = lm_setup(args.quick, words)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    batch_size = 4 if args.quick else 32
    encoder, built_s, load_s = make_encoder(folder, config, "AutoModelForCausalLM", "text", device, dtype,
                                            batch_size, args.through_disk, causal=True, max_length=512)
    rows = []
    for length in (16, 32) if args.quick else (64, 256):
        texts = [" ".join(rng.choice(words, length)) for _ in range(batch_size)]
        inputs = dict(encoder.tokenizer(texts, padding=True, return_tensors="pt").to(device))
        tokens = inputs["input_ids"].shape[1]
        assert tokens == length, f"expected {length} tokens per text, the tokenizer made {tokens}"

        @torch.inference_mode()
        def forward(inputs=inputs):
            encoder.feature_model(**inputs, output_hidden_states=True)

        rows.append(measure(encoder, texts, forward, tokens, config, device, args.warmup, args.repeats, rate,
                            architecture="LLaMA-7B" if not args.quick else "LLaMA (tiny)",
                            processor=type(encoder.tokenizer).__name__, build_s=built_s, save_and_load_s=load_s))
    del encoder
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny models, float32, on the CPU (a smoke test)")
    parser.add_argument("--only", choices=["vit", "lm"], help="run one of the two models")
    parser.add_argument("--through-disk", action="store_true",
                        help="save the random weights (safetensors) and let the encoder load them (LM: ~13 GB)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed batches first (default 3; quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed batches (default 10; quick 2)")
    args = parser.parse_args()
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    args.repeats = args.repeats if args.repeats is not None else (2 if args.quick else 10)
    if args.quick:
        device, dtype = torch.device("cpu"), torch.float32
    elif torch.cuda.is_available():
        device, dtype = torch.device("cuda"), torch.bfloat16
    else:
        raise SystemExit("gpu_embed needs a CUDA device (use --quick for the CPU smoke test)")
    rate = matmul_tflops(device, dtype, n=1024 if args.quick else 8192, repeats=3 if args.quick else 20)
    print(f"{DTYPE_NAMES[dtype]} matmul: {rate:.1f} TFLOP/s", flush=True)
    rows = []
    for which, run in (("vit", run_vit), ("lm", run_lm)):
        if args.only in (None, which):
            with tempfile.TemporaryDirectory(prefix=f"gpu_embed_{which}_") as folder:
                rows += run(args, device, dtype, rate, Path(folder))
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    meta = {"device": name, "dtype": DTYPE_NAMES[dtype], "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "matmul_tflops": rate,
            "warmup_batches": args.warmup, "timed_batches": args.repeats, "through_disk": args.through_disk,
            "date": time.strftime("%Y-%m-%d"),
            "flops": "2 x linear_weights x tokens + 4 x layers x tokens^2 x hidden per sample (forward)"}
    OUT.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (OUT / f"gpu_embed{suffix}.json").write_text(json.dumps({**meta, "results": rows}, indent=1))
    sizes = "tiny configs (2 layers, hidden 64)" if args.quick else "random weights of real sizes"
    lines = [f"Device: {name}; {DTYPE_NAMES[dtype]}, {sizes}, through the product's hf encoders; "
             f"matmul {rate:.1f} TFLOP/s; {args.warmup} warm-up + {args.repeats} timed batches; "
             f"FLOPs per sample = 2 x linear weights x tokens + 4 x layers x tokens^2 x hidden.", "",
             "| model | batch | tokens | params | encode (samples/s) | forward (samples/s) | encode TFLOP/s | "
             "forward TFLOP/s | forward share of matmul |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['architecture']} | {r['batch']} | {r['tokens_per_sample']} | {r['parameters'] / 1e6:,.1f} M | "
              f"{r['encode_per_s']:.1f} | {r['forward_per_s']:.1f} | {r['encode_tflops']:.1f} | "
              f"{r['forward_tflops']:.1f} | {r['forward_share_of_matmul']:.0%} |" for r in rows]
    (OUT / f"gpu_embed{suffix}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    assert all(r["finite_features"] for r in rows), "some features are not finite"


if __name__ == "__main__":
    main()
