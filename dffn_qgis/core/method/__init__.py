"""The DFFN method: network, feature fusion, training, least-squares abundances, brightness."""
