"""The setup every protocol shares: image features computed once (`features`), the backbone and the models (`setup`)."""
