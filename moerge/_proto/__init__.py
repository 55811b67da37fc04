"""Generated gRPC stubs of the moerge wire protocol. Never edit by hand."""
