"""Training: train state, the SFT trainer, losses, optimizer."""
