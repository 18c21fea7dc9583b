"""Helpers shared by the test suite and the benchmarks (never used by the product code paths).

    loss_reference   slow loop implementations of the losses, the reference for the vectorised ones
    checkpoints      small untrained checkpoints in the real file format
    images           hostile image files (a PNG decompression bomb)
"""
