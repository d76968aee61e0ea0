"""rshift: where the residual stream turns from the current token to the next.

Glossary, used the same way across the package:

residual stream
    The hidden state that every block reads from and adds to.
block
    One transformer layer (attention and MLP with their skip connections).
    A model has N blocks, numbered 1..N in user-facing settings.
layer index
    Index into the residual stream h_0..h_N. Layer 0 is the embedding output
    (with the model's own scaling), the input of block 1. Layer l >= 1 is the
    output of block l, taken *before* the final norm.
final norm
    The norm the model applies to h_N before the unembedding.
unembedding
    The output matrix W_U (the input embedding matrix when tied) plus bias.
logit lens
    lens_l(t) = softcap(W_U @ final_norm(h_l[t]) + b): the model's own head
    applied to an intermediate state. lens_N equals the model's logits.
current / next token
    x[t] and x[t+1] for position t. Input alignment means h_l[t] matches
    x[t]; output alignment means it matches x[t+1].
shift layer
    The smallest layer from which logprob_next > logprob_current holds at
    every deeper layer.
attenuation
    h_L = alpha * h_{L-1} + (Block_L(h_{L-1}) - h_{L-1}): block L keeps its
    update, and the stream it carries over is scaled by alpha.

Array shapes are written ``(layers, positions)`` where ``layers = N + 1``.
"""

__version__ = "0.1.0"
