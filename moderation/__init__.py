"""Moderation of generated text: scorers, masking, policies. A library with no gRPC and no database."""
