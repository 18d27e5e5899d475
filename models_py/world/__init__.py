"""The simulated shop: its hidden state, the events it shows, its true probabilities and diagnostics against them."""
