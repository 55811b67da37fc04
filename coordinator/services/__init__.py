"""The service layer: the one place where the coordinator's rules live.

Front doors (gRPC servicers, the command line, later the dashboard) call these
functions. They take `*, session`, never commit, and raise ServiceError.
"""
