"""Training data: records (image, caption, layout, referring expressions) from the world or real datasets."""
