"""Training and evaluating embedding models: image-text pairs from a media folder, open_clip's own
model and loss code, and retrieval metrics over a pin database."""
