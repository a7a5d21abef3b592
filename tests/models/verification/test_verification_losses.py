"""Triplet / contrastive / pairwise losses and online mining against hand-computed small cases."""

import pytest
import torch

from cnnlab.models.verification import (EmbeddingNet, PairwiseHead, VerificationNet, contrastive_loss, mine_triplets,
                                        mined_triplet_loss, pair_bce_loss, pairwise_sq_distances, triplet_loss)

# Four points on a line (1-d encodings), identities A A B B:
#   x = 0 (A), 1 (A), 1.5 (B), 4 (B)
X = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
Y = torch.tensor([0, 0, 1, 1])


def test_pairwise_sq_distances():
    d = pairwise_sq_distances(X)
    assert torch.allclose(d, torch.tensor([[0, 1, 2.25, 16], [1, 0, 0.25, 9], [2.25, 0.25, 0, 6.25],
                                           [16, 9, 6.25, 0]]))


def test_triplet_loss_hand_computed():
    a, p, n = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.2]])
    # ||a-p||^2 = 1, ||a-n||^2 = 1.44: max(1 - 1.44 + 0.2, 0) = 0 ; margin 0.5 -> 0.06
    assert float(triplet_loss(a, p, n, 0.2)) == 0.0
    assert float(triplet_loss(a, p, n, 0.5)) == pytest.approx(0.06)


def test_batchhard_mining_hand_computed():
    a, p, n = mine_triplets(pairwise_sq_distances(X), Y, "batchhard")
    # anchor 0: positive 1, nearest negative 2 (2.25); anchor 1: pos 0, neg 2 (0.25)
    # anchor 2: positive 3, nearest negative 1 (0.25); anchor 3: pos 2, neg 2? no: neg 1 (9) vs 0 (16) -> 1
    assert a.tolist() == [0, 1, 2, 3] and p.tolist() == [1, 0, 3, 2] and n.tolist() == [2, 2, 1, 1]
    loss, active = mined_triplet_loss(X, Y, margin=0.2, strategy="batchhard")
    # losses: max(1-2.25+.2,0)=0 ; max(1-0.25+.2)=0.95 ; max(6.25-0.25+.2)=6.2 ; max(6.25-9+.2,0)=0
    assert float(loss) == pytest.approx((0.95 + 6.2) / 4) and float(active) == pytest.approx(0.5)


def test_soft_margin_batchhard_hand_computed():
    import math

    loss, active = mined_triplet_loss(X, Y, margin=0.2, strategy="batchhard", soft=True)
    # the same batch-hard triplets; x = d_ap - d_an: 1 - 2.25, 1 - 0.25, 6.25 - 0.25, 6.25 - 9
    xs = [-1.25, 0.75, 6.0, -2.75]
    assert float(loss) == pytest.approx(sum(math.log1p(math.exp(x)) for x in xs) / 4)
    assert float(active) == pytest.approx(0.5)  # x + 0.2 > 0 for two of the four, as with the hinge
    # a batch where every hinge is satisfied: no gradient from the hinge, still a pull from the soft margin
    grads = []
    for soft in (False, True):
        X2 = torch.tensor([[0.0], [0.1], [3.0], [3.1]], requires_grad=True)
        loss, active = mined_triplet_loss(X2, Y, 0.2, "batchhard", soft=soft)
        loss.backward()
        grads.append(float(X2.grad.abs().sum()))
        assert float(active) == 0.0
    assert grads[0] == 0.0 and grads[1] > 0


def test_semihard_mining_hand_computed():
    a, p, n = mine_triplets(pairwise_sq_distances(X), Y, "semihard")
    # pairs (0,1),(1,0),(2,3),(3,2). (0,1): d_ap=1, negatives 2 (2.25), 3 (16): nearest farther -> 2
    # (1,0): d_ap=1, negs 2 (0.25), 3 (9): farther than 1 -> 3.  (2,3): d_ap=6.25, negs 0 (2.25), 1 (0.25):
    # none farther -> the farthest negative 0.  (3,2): d_ap=6.25, negs 0 (16), 1 (9): nearest farther -> 1
    assert list(zip(a.tolist(), p.tolist(), n.tolist())) == [(0, 1, 2), (1, 0, 3), (2, 3, 0), (3, 2, 1)]


def test_random_mining_gives_valid_triplets():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 4)
    ids = torch.arange(12) // 3
    a, p, n = mine_triplets(pairwise_sq_distances(emb), ids, "random", g)
    assert len(a) == 4 * 3 * 2  # every ordered anchor-positive pair
    assert (ids[a] == ids[p]).all() and (a != p).all() and (ids[a] != ids[n]).all()


def test_contrastive_loss_hand_computed():
    # pairs: (0,1) same d=1 -> 1 ; (0,2) diff d=1.5 -> max(2-1.5,0)^2 = .25 ; (0,3) diff d=4 -> 0
    # (1,2) diff d=.5 -> 2.25 ; (1,3) diff d=3 -> 0 ; (2,3) same d=2.5 -> 6.25
    assert float(contrastive_loss(X, Y, margin=2.0)) == pytest.approx((1 + 0.25 + 2.25 + 6.25) / 6)


def test_pairwise_head_hand_computed():
    head = PairwiseHead(2, "l1")
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor([[1.0, -2.0]]))
        head.linear.bias.fill_(0.5)
    fi, fj = torch.tensor([[0.5, 0.2]]), torch.tensor([[0.1, 0.6]])
    assert float(head(fi, fj).detach()) == pytest.approx(1 * 0.4 - 2 * 0.4 + 0.5)
    chi = PairwiseHead(2, "chi2", eps=0.0)
    with torch.no_grad():
        chi.linear.weight.copy_(torch.tensor([[1.0, 1.0]]))
        chi.linear.bias.zero_()
    assert float(chi(fi, fj).detach()) == pytest.approx(0.16 / 0.6 + 0.16 / 0.8)


def test_pair_bce_balances_positives_and_negatives():
    head = PairwiseHead(1)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.zero_()
    loss, _ = pair_bce_loss(head, X, Y)  # every logit 0: log 2 for each class, averaged over the two
    assert float(loss.detach()) == pytest.approx(float(torch.log(torch.tensor(2.0))))


def test_embedding_net_is_unit_norm_and_trains():
    from cnnlab.models import create_model

    net = VerificationNet(EmbeddingNet(create_model("convnet_bn", num_classes=2, in_chans=1, width=8), dim=16))
    x = torch.randn(8, 1, 16, 16)
    emb = net(x)
    assert emb.shape == (8, 16) and torch.allclose(emb.norm(dim=1), torch.ones(8), atol=1e-5)
    loss, _ = mined_triplet_loss(emb, torch.arange(8) // 2, 0.2, "batchhard")
    loss.backward()
    used = {n: p for n, p in net.named_parameters() if not n.startswith("embedder.backbone.head")}  # its classifier is unused
    assert all(p.grad is not None for p in used.values())
    d = net.pair_distances(emb.detach(), emb.detach())
    assert torch.allclose(d, pairwise_sq_distances(emb.detach()), atol=1e-4)


def test_features_encoding_is_the_normalized_map_below_the_trained_projection():
    import torch.nn.functional as F

    from cnnlab.models import create_model

    torch.manual_seed(0)
    backbone = create_model("convnet_bn", num_classes=2, in_chans=1, width=4).eval()
    embedder = EmbeddingNet(backbone, dim=16, pool="flatten", in_shape=(1, 8, 8), encoding="features")
    net = VerificationNet(embedder).eval()
    x = torch.randn(5, 1, 8, 8)
    feats = backbone.forward_features(x).flatten(1)  # (5, 16 * 2 * 2): the oracle, the backbone's own map
    assert net.embedder.encoding_dim == feats.shape[1] == 64
    assert torch.allclose(net(x), F.normalize(feats, dim=1), atol=1e-6)
    assert torch.allclose(net.project(x), F.normalize(net.embedder.proj(feats), dim=1), atol=1e-6)
    projection = VerificationNet(EmbeddingNet(backbone, dim=16, pool="flatten", in_shape=(1, 8, 8))).eval()
    assert torch.equal(projection(x), projection.project(x))  # the default encodes with the projection
    with pytest.raises(ValueError, match="encoding"):
        EmbeddingNet(backbone, dim=16, encoding="pixels")
