"""Generative models of the course's last lecture: a convolutional autoencoder, a VAE and DCGAN."""

from cnnlab.models.generative.autoencoder import ConvAutoencoder, ConvVAE, vae_loss
from cnnlab.models.generative.dcgan import DCGAN, dcgan_init

__all__ = ["ConvAutoencoder", "ConvVAE", "vae_loss", "DCGAN", "dcgan_init"]
