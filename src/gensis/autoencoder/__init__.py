"""The latent space, trained on the user's own images: an ``AutoencoderKL`` from scratch.

Stage 2 above 96 px runs in a latent space (LDM). Gen-SIS's generator learns only from the
user's unlabeled images, so the autoencoder does too: ``gensis train-autoencoder`` (and the
``autoencoder`` stage of ``gensis run``) trains diffusers' own ``AutoencoderKL``; no outside
weights are needed at any image size.
"""

from gensis.autoencoder.model import (  # noqa: F401
    AUTOENCODER_FORMAT,
    autoencoder_digest,
    build_autoencoder,
    exported_autoencoder,
    read_autoencoder_meta,
    save_autoencoder,
)
