"""Face verification: Siamese encoders, the pairwise (binary-classification) head, triplet mining."""

from cnnlab.models.verification.embedding import EmbeddingNet, PairwiseHead, VerificationNet
from cnnlab.models.verification.losses import (MINING, contrastive_loss, mine_triplets, mined_triplet_loss,
                                               pair_bce_loss, pairwise_sq_distances, triplet_loss)

__all__ = ["EmbeddingNet", "PairwiseHead", "VerificationNet", "MINING", "contrastive_loss", "mine_triplets",
           "mined_triplet_loss", "pair_bce_loss", "pairwise_sq_distances", "triplet_loss"]
