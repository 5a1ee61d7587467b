"""Controls: testable requirements over signals, evaluated over time."""
