"""trainer: learns movie and link embeddings from a film dataset's outgoing links.

Importing this package is cheap: TensorFlow is loaded only by the training code.
The artifact it writes is described once, in `trainer.run`.
"""
