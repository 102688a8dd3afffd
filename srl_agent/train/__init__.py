"""SRL training: GRPO with dynamic sampling (grpo.py holds the math), and the SFT baseline."""
