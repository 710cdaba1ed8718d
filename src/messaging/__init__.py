"""One-way messaging between peers on a negotiated substream (wire.md §4)."""
