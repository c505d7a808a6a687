"""The tensor core: dtypes and promotion, devices, Tensor, the op registry and the dispatch seam."""
