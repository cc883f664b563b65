"""Images on disk: content store, image index, registry client, layers, snapshots, GC."""
