"""The training loop and what it watches: the budget, metrics and the divergence guard."""
