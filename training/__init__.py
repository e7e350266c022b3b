"""Training loop, evaluation and run logging (installed as mrq_agents.training)."""
