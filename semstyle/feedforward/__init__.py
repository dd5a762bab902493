"""Feed-forward style transfer: the Multimodal hierarchical network and the Johnson baseline, training, inference."""
