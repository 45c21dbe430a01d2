"""Blocks shared by the matting networks: norms, attention, LoRA, OpenCV-exact morphology, PRM."""
