"""Images: the image service over the content store, and its records."""
