"""The gRPC front door: thin servicers over coordinator.services."""
