"""Patches of feature maps, the unit of CNNMRF's and neural doodle's style (Li & Wand 2016; Champandard 2016):
patch geometry (cutting, overlaying, indexing patches across style copies), the exact normalised-cross-correlation
search and its principal-channel and region-restricted variants, and the vectorised PatchMatch step. The loss that
uses them is :mod:`semstyle.losses.mrf`.

Shapes: features ``(1, C, h, w)``; masks ``(1, K, h, w)``; patch rows ``(L, k·k·C)`` in ``(ky, kx, c)`` order.
"""
