"""Operations: logging set-up, Prometheus metrics, the maintenance sweep, the health check."""
