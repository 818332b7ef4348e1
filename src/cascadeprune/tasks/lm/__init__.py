"""The causal-LM task: perplexity per text domain, next-token recovery, multi-domain calibration."""
