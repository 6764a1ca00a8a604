"""Layer 2, data: Allen metadata and NWB traces, the digital twin, stimulus tables, replicates, curated datasets."""
