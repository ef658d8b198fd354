"""Gates in the cloud: entries, snapshots, residents and their face embeddings, gallery sync."""
