"""Training: the run config and loop, checkpoints, run folders, logging, fine-tuning (installed as
mrq_agents.training)."""
