"""What every provider's sandbox shares: fault injection and serving."""
