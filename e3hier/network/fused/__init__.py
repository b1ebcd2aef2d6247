"""The speed layer: e3nn's modules as built, evaluated faster with the same parameters and outputs.

- ``layers``: the convolution and gate on the fused kernels, and ``fuse_tensor_products``;
- ``scalar_product``, ``edge_product``: the two kinds of tensor product, each a few large matrix products;
- ``scalar_linear``: self-interaction and linear maps with constant node attributes, by hand;
- ``radial``: the radial networks with a hand-written backward;
- ``generated_code``: rewrites of the code e3nn generates;
- ``e3nn_internals``: the one place that reaches into e3nn beyond its documented API.
"""
