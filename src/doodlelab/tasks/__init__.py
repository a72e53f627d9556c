"""Models with their loss and prediction rule, one module per task and backend."""
