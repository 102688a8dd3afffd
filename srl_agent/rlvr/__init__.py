"""RLVR for agents: episodes in sandboxes, scored by the instance's own tests.

    tasks.py     which tasks RLVR trains on (swe-mini's train split, or any swebench-5 instances file)
    reward.py    the verifiable reward: eval_script in the episode's sandbox -> swebench log parser -> score
    episodes.py  G episodes per task in their own sandboxes, batched per turn, kept as the exact tokens sampled
    batch.py     scored groups -> GRPO tensors over whole episodes (mask-weighted), flat groups dropped
"""
