"""Facts: normalized observations derived deterministically from evidence."""
