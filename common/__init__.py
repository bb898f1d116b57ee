"""Small file helpers shared by every stage: checksums and atomic publishing."""
