"""moerge: recycle and route among specialised LoRA experts.

The core package: base models, expert files and their validation, routing
statistics and the wire-format conversions. It holds no network or database
code; the coordinator and the contributor app build on it.
"""

__version__ = "0.1.0"
