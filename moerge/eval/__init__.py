"""The benchmark: pool files, training or reusing a pool's experts, scoring every system."""
