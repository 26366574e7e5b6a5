"""A tiny LLaMA-architecture GGUF with random weights (fixed seed) and LLaMA's real 32,000-token SPM
vocabulary, for the RealServer tests: llama-server loads and runs it like any LLaMA model.

No trained model can be downloaded where these tests run, and a random one is enough for testing a
proxy, as long as every answer runs to max_tokens, so the true length of an answer is known:
- the output layer rules out control tokens (<unk>, <s>, </s>: EOS would end answers at random) and
  byte-fallback tokens (<0x00>..<0xFF>: random bytes are invalid UTF-8, and llama-server then ends the
  stream with an error); tokens containing '<' are ruled out too, so no text can start a stop string
  (llama-server holds such text back and sends it later, two tokens in one chunk);
- how: residual dimension 0 holds a constant (column 0 of the embeddings; no layer writes to it), so
  after the final RMS norm it is always positive, and the ruled-out rows of the output matrix have a
  large negative weight there and nothing elsewhere: their logits sit far below every other token's.

Usage: PYTHONPATH=<llama.cpp>/gguf-py python3 make_model.py --vocab ggml-vocab-llama-spm.gguf --out m.gguf
"""
import argparse

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, TokenType

SEED = 20261130
N_EMBD = 256
N_HEAD = 4
N_LAYER = 4
N_FF = 768
N_CTX = 4096
RULED_OUT = -1000.0

# ChatML, so llama-server has a template of the model's own and needs no guess.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", required=True, help="llama.cpp's models/ggml-vocab-llama-spm.gguf")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    vocab = GGUFReader(args.vocab)
    tokens = vocab.fields["tokenizer.ggml.tokens"].contents()
    types = vocab.fields["tokenizer.ggml.token_type"].contents()
    n_vocab = len(tokens)
    ruled_out = np.array([t != TokenType.NORMAL or "<" in s for s, t in zip(tokens, types)])

    writer = GGUFWriter(args.out, "llama")
    writer.add_name("tiny-random-llama")
    writer.add_description(f"random weights, seed {SEED}; for tests only")
    writer.add_context_length(N_CTX)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(1)  # mostly F16

    # The tokenizer exactly as llama.cpp ships it for LLaMA (SPM, 32,000 tokens).
    for key, field in vocab.fields.items():
        if key.startswith("tokenizer."):
            if field.types[0] == GGUFValueType.ARRAY:
                writer.add_key_value(key, field.contents(), GGUFValueType.ARRAY, sub_type=field.types[1])
            else:
                writer.add_key_value(key, field.contents(), field.types[0])
    writer.add_chat_template(CHAT_TEMPLATE)

    rng = np.random.default_rng(SEED)

    def normal(*shape: int, std: float) -> np.ndarray:
        return rng.normal(0.0, std, size=shape).astype(np.float32)

    # numpy shapes are (rows = outputs, columns = inputs), the reverse of ggml's {ne0, ne1}.
    embeddings = normal(n_vocab, N_EMBD, std=1.0)
    embeddings[:, 0] = 1.0  # the constant feature
    writer.add_tensor("token_embd.weight", embeddings.astype(np.float16))

    for layer in range(N_LAYER):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(prefix + name + ".weight", normal(N_EMBD, N_EMBD, std=N_EMBD ** -0.5))
        attn_out = normal(N_EMBD, N_EMBD, std=N_EMBD ** -0.5)
        attn_out[0, :] = 0.0  # leaves the constant feature alone
        writer.add_tensor(prefix + "attn_output.weight", attn_out)
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", normal(N_FF, N_EMBD, std=N_EMBD ** -0.5))
        writer.add_tensor(prefix + "ffn_up.weight", normal(N_FF, N_EMBD, std=N_EMBD ** -0.5))
        ffn_down = normal(N_EMBD, N_FF, std=N_FF ** -0.5)
        ffn_down[0, :] = 0.0
        writer.add_tensor(prefix + "ffn_down.weight", ffn_down)

    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # Spread of about 1.5 between the allowed tokens' logits: varied text, nothing degenerate.
    output = normal(n_vocab, N_EMBD, std=0.1)
    output[:, 0] = 0.0
    output[ruled_out, :] = 0.0
    output[ruled_out, 0] = RULED_OUT
    writer.add_tensor("output.weight", output.astype(np.float16))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"make_model.py: wrote {args.out}: {n_vocab} tokens ({int(ruled_out.sum())} ruled out), "
          f"{N_LAYER} layers x {N_EMBD}, seed {SEED}")


if __name__ == "__main__":
    main()
