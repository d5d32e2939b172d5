"""Small objects the tests share."""

import torch

from companion.model import build_model


def tiny(mixer: str, **overrides):
    """A 2-layer, 16-wide classification model on an 11-token vocabulary, seeded."""
    cfg = dict(
        mixer=mixer, d_model=16, n_layers=2, n_heads=2, state_dim=8, vocab_size=11, n_classes=3
    )
    cfg.update(overrides)
    torch.manual_seed(0)
    return build_model(cfg)


def exit_code(argv: list[str]) -> int:
    """The exit status of ``companion argv...`` run in this process."""
    from companion.cli import main

    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code
