"""``dftplug convert``: DFT run folders -> one HDF5 dataset (placeholder until the dataset lands)."""
