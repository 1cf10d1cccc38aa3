"""The tiny Transformer classifier of TP4, compiled as the labs train it: the transformer and attention labs."""

from kcourse.cli import check_heads
from kcourse.errors import LabError


def build_classifier(vocab, max_len=32, d_model=64, n_heads=2, n_layers=2, pe="sinusoidal", drop=0.1,
                     embeddings=None, freeze_embeddings=True, learning_rate=1e-3, scaled=True, name=None, **block):
    """A compiled TinyTransformerClassifier on `vocab` (a kcourse.text.Vocabulary): AdamW, cross-entropy on logits, accuracy.

    `block`: the blocks' `activation`, `norm` and `residual` (EncoderBlock).
    """
    import keras

    from kcourse.models.tiny_transformer_classifier import TinyTransformerClassifier
    from kcourse.training import compile_model

    if embeddings is not None and tuple(embeddings.shape)[0] != len(vocab):
        raise LabError(
            f"the embeddings have {embeddings.shape[0]} rows but the vocabulary has {len(vocab)} words; "
            f"expected a ({len(vocab)}, D) table"
        )
    check_heads(d_model, n_heads)
    model = TinyTransformerClassifier(
        vocab_size=len(vocab), max_len=max_len, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
        pe=pe, drop=drop, pad_id=vocab.pad_id, scaled=scaled, embeddings=embeddings,
        freeze_embeddings=embeddings is not None and freeze_embeddings, name=name or f"transformer_{pe}", **block,
    )
    model.build((None, max_len))
    return compile_model(model, keras.optimizers.AdamW(learning_rate))
