"""Experts: LoRA adapters in PEFT's own format plus moerge's metadata."""
