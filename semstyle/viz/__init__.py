"""Pictures: layouts (grids, captioned rows, contact sheets), keypoints and correspondences, feature views, loss
plots. One place for every figure the package draws."""
