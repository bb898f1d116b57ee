"""server: the movielinks gRPC service over a published index version.

Domain code (catalogue, titles, recommend) knows nothing of gRPC; the servicer
translates requests into one domain call each. Imports neither TensorFlow nor the
trainer.
"""
