"""The gRPC edge: interceptors (request ids, errors, metrics, auth) and the servicers, which
only translate between protobuf and the pipeline or the domain modules."""
