"""The coordinator: registry, blob store, gRPC services and the gating job."""
